"""Embedding aligned photos into the generator's latent space: encoder, optimisation, losses, metrics."""

__all__ = ["commands", "embed", "encoder", "losses", "metrics", "project"]
