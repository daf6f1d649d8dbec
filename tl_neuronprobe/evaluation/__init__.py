"""Evaluation: control tasks, the "encoded" and "used" evaluations and their comparison."""
