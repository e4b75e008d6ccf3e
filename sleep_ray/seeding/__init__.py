"""Sleep, stage 1: Knowledge Seeding. The teacher-self (memories in context) distils into the student-large
(grown by one expert, no context) with generalized on-policy distillation and Learning-to-Imitate
(`run.run_seeding`)."""
