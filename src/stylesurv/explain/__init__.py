"""What a model's latent health direction means: the direction, edited faces, attribution, nuisance probes."""

__all__ = ["attribution", "config", "direction", "edit", "localize", "nuisance", "outputs", "result"]
