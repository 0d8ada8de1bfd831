"""Cohort tables and photos: validation, image reading, and the synthetic world with known truth."""

__all__ = ["images", "render", "simulate", "synth_commands", "synthetic", "table", "validate_commands"]
