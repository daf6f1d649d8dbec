"""Rankers: scikit-learn selectors that order neurons by how much they encode a property."""

from ._rankers import *  # noqa: F401,F403
