"""Evaluation: answer scoring and continual-learning metrics (`metrics`), result files and plots (`report`).

`metrics` and `report` import neither torch nor Ray; `report` imports matplotlib only when it draws.
"""
