"""StyleGAN2: networks, safe checkpoint loading, training, style space, rendering and the face subspace."""

__all__ = [
    "augment",
    "checkpoint",
    "commands",
    "dataset",
    "dist",
    "face_subspace",
    "fid",
    "loss",
    "networks",
    "nvidia_pickle",
    "ops",
    "presets",
    "protocol",
    "render",
    "rosinality",
    "stylespace",
    "train",
    "train_commands",
]
