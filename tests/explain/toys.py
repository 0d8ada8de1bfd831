"""Tiny stand-ins whose answers are known: a linear generator and a linear survival bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stylesurv.core.latents import Latents, save_latents


class LinearSynthesis(torch.nn.Module):
    """img = flatten(ws) @ weight + noise, reshaped to [N, 3, R, R]; noise is fixed in "const" mode."""

    def __init__(self, weight: torch.Tensor, num_ws: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.num_ws, self.w_dim, self.img_resolution = num_ws, w_dim, resolution
        self.register_buffer("weight", weight)  # [num_ws * w_dim, 3 * R * R]
        self.register_buffer("const_noise", 0.01 * torch.randn(3 * resolution * resolution))

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        flat = ws.reshape(len(ws), -1) @ self.weight
        if noise_mode == "const":
            flat = flat + self.const_noise
        elif noise_mode == "random":
            flat = flat + 0.01 * torch.randn_like(flat)
        return flat.reshape(len(ws), 3, self.img_resolution, self.img_resolution)


class LinearGenerator(torch.nn.Module):
    """A generator with the Generator API's attributes and a linear synthesis network."""

    def __init__(self, weight: torch.Tensor, num_ws: int = 4, w_dim: int = 6, resolution: int = 8) -> None:
        super().__init__()
        self.num_ws, self.w_dim, self.img_resolution, self.img_channels = num_ws, w_dim, resolution, 3
        self.synthesis = LinearSynthesis(weight, num_ws, w_dim, resolution)


def region_mask(resolution: int) -> np.ndarray:
    """A label mask: face (1) in the centre square, clothing (2) on the bottom rows, rest background (0)."""
    mask = np.zeros((resolution, resolution), dtype=np.uint8)
    q = resolution // 4
    mask[q : 3 * q, q : 3 * q] = 1
    mask[3 * q + 1 :, :] = 2
    return mask


def region_generator(num_ws: int = 4, w_dim: int = 6, resolution: int = 8, seed: int = 0) -> LinearGenerator:
    """A linear generator in which code coordinate (layer 0, dim k) changes only pixels of mask label k
    (k = 0 background, 1 face, 2 clothing); every other coordinate changes random pixels everywhere."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_ws * w_dim, 3, resolution, resolution, generator=gen) * 0.1
    mask = torch.from_numpy(region_mask(resolution))
    for label in range(3):
        weight[label] = torch.randn(3, resolution, resolution, generator=gen) * (mask == label)
    return LinearGenerator(weight.reshape(num_ws * w_dim, -1), num_ws, w_dim, resolution)


class LinearBundle:
    """risk = beta . PCA((x - mean) / sd), the shape of a Cox model on standardised PCA features."""

    def __init__(self, mean: np.ndarray, sd: np.ndarray, components: np.ndarray, beta: np.ndarray) -> None:
        self.mean, self.sd, self.components, self.beta = mean, sd, components, beta

    def predict_codes(self, codes: np.ndarray) -> np.ndarray:
        flat = codes.reshape(len(codes), -1)
        return ((flat - self.mean) / self.sd) @ self.components.T @ self.beta

    def latent_direction(self) -> np.ndarray:
        return (self.components.T @ self.beta) / self.sd


def synthetic_cohort(
    root: Path, n: int = 240, seed: int = 0, confounded: bool = True
) -> tuple[Latents, np.ndarray]:
    """Codes whose axis 0 is the facial risk and axis 1 a background that, when ``confounded``, tracks death
    in the training split only (like `synth --confounded`)."""
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((n, 6))
    face = codes[:, 0]
    split = np.where(rng.uniform(size=n) < 0.7, "train", "test")
    time = rng.exponential(np.exp(-1.2 * face)) * 1000 + 1.0
    event = (rng.uniform(size=n) < 0.8).astype(int)
    early = time < np.median(time)
    background = np.where(
        (split == "train") & confounded,
        np.where(early, 1.5, -1.5) + 0.3 * rng.standard_normal(n),
        codes[:, 1],
    )
    codes[:, 1] = background
    ids = np.array([f"s{i:03d}" for i in range(n)])
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"patient_id": ids, "time": time.round(1), "event": event}).to_csv(
        root / "clinical.csv", index=False
    )
    pd.DataFrame(
        {"patient_id": ids, "lp_face": 1.2 * face, "background_value": background, "split": split}
    ).to_csv(root / "truth.csv", index=False)
    latents = Latents(patient_id=ids, w=codes.astype(np.float32))
    save_latents(root / "latents.npz", latents)
    return latents, codes
