"""Tiny real StyleGAN2 networks for the inversion tests, built deterministically from a seed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylesurv.gan.networks import Discriminator, Generator

RESOLUTION = 16
G_KWARGS = dict(
    z_dim=32,
    c_dim=0,
    w_dim=32,
    img_resolution=RESOLUTION,
    img_channels=3,
    mapping_kwargs=dict(num_layers=2),
    synthesis_kwargs=dict(channel_base=256, channel_max=32),
)


def tiny_generator(seed: int = 0, noise_strength: float = 0.0) -> Generator:
    """A 16 px generator (num_ws 6, w_dim 32); ``noise_strength`` > 0 makes the noise maps matter."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = Generator(**G_KWARGS).eval()
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(noise_strength)
    return G


def tiny_discriminator(seed: int = 0) -> Discriminator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Discriminator(0, RESOLUTION, 3, channel_base=256, channel_max=32).eval()


@torch.no_grad()
def sample_images(G: Generator, n: int, seed: int, psi: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes [n, num_ws, w_dim] and their images [n, 3, R, R] from fixed z."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    ws = G.mapping(z, None, truncation_psi=psi)
    return ws, G.synthesis(ws, noise_mode="const")


def make_aligned(folder: Path, n: int = 7) -> Path:
    """n usable photos from the tiny generator, one excluded row and one missing photo, masks for some."""
    G = tiny_generator()
    _, images = sample_images(G, n, seed=7)
    pixels = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    (folder / "masks").mkdir(parents=True)
    rows = []
    for i, array in enumerate(pixels):
        pid = f"P{i:03d}"
        Image.fromarray(array).save(folder / f"{pid}.png")
        rows.append({"patient_id": pid, "status": "multiple_faces" if i == 1 else "ok", "reason": ""})
        if i % 2 == 0:
            label = np.zeros((16, 16), dtype=np.uint8)
            label[4:12, 4:12] = 1
            Image.fromarray(label).save(folder / "masks" / f"{pid}.png")
    Image.fromarray(pixels[0]).save(folder / "X999.png")  # aligned but excluded by qc
    rows.append({"patient_id": "X999", "status": "extreme_pose", "reason": "turned"})
    rows.append({"patient_id": "Z000", "status": "no_face", "reason": "none found"})
    with (folder / "qc.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["patient_id", "status", "reason"])
        writer.writeheader()
        writer.writerows(rows)
    return folder
