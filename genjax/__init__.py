"""genjax."""
