"""Training loops: base pretraining (and, with Ray Train, the sleep-time distillation)."""
