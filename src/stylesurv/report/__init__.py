"""The self-contained HTML report of a run folder, and every figure in it."""

__all__ = ["commands", "html", "plots"]
