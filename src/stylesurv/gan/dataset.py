"""Training images: an aligned folder (its qc.csv-usable patients) or a plain folder of R x R images.

Images are held in memory as uint8 when they fit (the synthetic world's 20,000 portraits at 64 px take
250 MB) and read from disk per minibatch otherwise.  The order in which they are shown is a pure function
of (seed, epoch, position), so a resumed run shows exactly the images it would have shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from stylesurv.core.aligned import QC_FILE, usable_patients
from stylesurv.core.console import track
from stylesurv.core.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
_PRELOAD_BYTES = 2 << 30  # keep the whole dataset in memory up to this size


def list_images(folder: str | Path) -> list[Path]:
    """The training images of ``folder``: the usable patients of an aligned folder (one with qc.csv; see
    `stylesurv.core.aligned.usable_patients`), else every image.

    A folder without images of its own but with ``photos/`` (a synthetic world written by ``stylesurv
    synth``, whose photos are already aligned) uses the images in ``photos/``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"training data folder {folder} does not exist")
    if (folder / QC_FILE).is_file():
        files = [folder / f"{pid}.png" for pid in usable_patients(folder)]
    else:
        files = _plain_images(folder)
        if not files and (folder / "photos").is_dir():
            files = _plain_images(folder / "photos")
    if not files:
        raise InputError(
            f"{folder} holds no training images ({', '.join(IMAGE_SUFFIXES)}, or qc.csv rows usable 1)"
        )
    return files


def _plain_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"cannot read training image {path}: {exc}") from exc


class ImageDataset:
    """The images of a folder as uint8 [3, R, R] arrays; all must be R x R with R a power of two."""

    def __init__(self, folder: str | Path, preload: bool | None = None) -> None:
        self.folder = Path(folder)
        self.files = list_images(self.folder)
        self.resolution = self._check_sizes()
        nbytes = len(self.files) * 3 * self.resolution**2
        self._cache: np.ndarray | None = None
        if preload if preload is not None else nbytes <= _PRELOAD_BYTES:
            cache = np.empty((len(self.files), 3, self.resolution, self.resolution), dtype=np.uint8)
            for i, path in enumerate(track(self.files, "loading images")):
                cache[i] = self._load(path)
            self._cache = cache

    def __len__(self) -> int:
        return len(self.files)

    def _check_sizes(self) -> int:
        sizes = {}
        for path in self.files:
            try:
                with Image.open(path) as im:
                    sizes[path] = im.size
            except (OSError, UnidentifiedImageError) as exc:
                raise InputError(f"cannot read training image {path}: {exc}") from exc
        first = self.files[0]
        side = sizes[first][0]
        for path, (w, h) in sizes.items():
            if w != h or w != side:
                raise InputError(
                    f"training image {path} is {w}x{h} but {first} is {side}x{side}; all images must be the "
                    f"same R x R size (align them with `stylesurv align --resolution R`)"
                )
        if side < 4 or side & (side - 1):
            raise InputError(f"training images are {side}x{side}; the side must be a power of two")
        return side

    def _load(self, path: Path) -> np.ndarray:
        image = _read_rgb(path)
        if image.shape[:2] != (self.resolution, self.resolution):
            raise InputError(f"training image {path} changed size while training")
        return image.transpose(2, 0, 1)

    def images(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 [N, 3, R, R] images for dataset indices; index i >= len(self) is image i - len x-flipped."""
        n = len(self.files)
        base = np.asarray(indices) % n
        if self._cache is not None:
            batch = self._cache[base]
        else:
            batch = np.stack([self._load(self.files[i]) for i in base])
        flip = np.asarray(indices) >= n
        batch = np.where(flip[:, None, None, None], batch[..., ::-1], batch)
        return torch.from_numpy(np.ascontiguousarray(batch))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, R, R] in 0..255 -> float32 in [-1, 1], the generator's range."""
    return images.to(torch.float32) / 127.5 - 1.0


@dataclass
class DataOrder:
    """The order of minibatches: a fresh permutation per epoch, drawn from (seed, epoch) only."""

    size: int  # number of distinct items (twice the images when mirrored)
    seed: int
    epoch: int = 0
    position: int = 0  # items of this epoch already shown

    def next(self, count: int) -> np.ndarray:
        """The next ``count`` item indices, continuing into new epochs as needed."""
        out = []
        while count > 0:
            perm = np.random.Generator(np.random.PCG64([self.seed, self.epoch])).permutation(self.size)
            take = perm[self.position : self.position + count]
            out.append(take)
            count -= len(take)
            self.position += len(take)
            if self.position >= self.size:
                self.epoch, self.position = self.epoch + 1, 0
        return np.concatenate(out)

    def state(self) -> dict[str, int]:
        return {"size": self.size, "seed": self.seed, "epoch": self.epoch, "position": self.position}
