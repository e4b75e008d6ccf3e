"""The sleep phase: Knowledge Seeding (and, later, Dreaming) that consolidates memories into new weights."""
