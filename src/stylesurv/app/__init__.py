"""The application layer: the command line, run configs, the pipeline, predictions and the demo."""

__all__ = [
    "align_commands",
    "cli",
    "config",
    "counterfactual",
    "explain_commands",
    "pipeline",
    "predict",
    "predict_commands",
    "run_commands",
]
