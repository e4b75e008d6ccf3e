"""The machinery both sleep stages and the wake scheduler share: Ray start-up, role resources, rollout-engine
construction, the Train fit with its deadline, step budgets, the student's starting point and checkpoint export."""
