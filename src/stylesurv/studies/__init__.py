"""Held-out refit studies and the explain stage that runs them with the explain outputs."""

__all__ = ["counterfactual", "explain_stage", "refit"]
