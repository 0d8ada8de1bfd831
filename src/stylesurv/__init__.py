"""stylesurv: survival prediction from portrait photos through StyleGAN2 latent embeddings."""

__version__ = "0.1.0"
