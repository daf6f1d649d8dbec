"""Core: neurons and hook names, the TransformerLens adapter, hook helpers and input validation."""
