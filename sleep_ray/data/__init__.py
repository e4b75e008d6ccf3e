"""Data: the open world format (schema), the synthetic knowledge world generator (world) and its templates."""
