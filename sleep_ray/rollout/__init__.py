"""Rollout engines: sample continuations from the current student, receive new weights in place."""
