"""Survival models on latent codes, photos and covariates: features, models, nested CV, metrics, bundles."""

__all__ = ["bundle", "cnn", "commands", "config", "data", "metrics", "models", "registry", "validation"]
