"""Wake: the served model, its memory store and the sleep scheduler."""
