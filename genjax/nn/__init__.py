"""Flax Linen modules. They know nothing of optimisers, data or files."""
