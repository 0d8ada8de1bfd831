"""Two CPU processes with gloo: identical weights on both ranks, equal to one process on the same batch.

The networks are small stand-ins without per-batch coupling (StyleGAN2's minibatch-std layer groups
samples differently when the batch is split, and its noise inputs come from each process's own RNG), so
the only difference between the runs is how the global batch is split and the gradients are averaged.
"""

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from stylesurv.gan.train import TrainConfig, discriminator_layers, train
from tests.gan.test_train import write_images


class _Mapping(torch.nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(z_dim, w_dim)
        self.num_ws = num_ws
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1,
        truncation_cutoff: Any = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        w = F.leaky_relu(self.fc(z), 0.2)
        if update_emas:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, 0.995))
        return w[:, None].repeat(1, self.num_ws, 1)


class _Synthesis(torch.nn.Module):
    def __init__(self, w_dim: int, num_ws: int, res: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(w_dim, 3 * res * res) for _ in range(num_ws))
        self.res = res

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        x = sum(layer(ws[:, i]) for i, layer in enumerate(self.layers))
        return torch.tanh(x).view(-1, 3, self.res, self.res)


class ToyGenerator(torch.nn.Module):
    def __init__(
        self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int, **_: Any
    ) -> None:
        super().__init__()
        self.init_kwargs = {
            "z_dim": 6,
            "c_dim": 0,
            "w_dim": 6,
            "img_resolution": img_resolution,
            "img_channels": 3,
        }
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.img_resolution = 6, 0, 6, 3, img_resolution
        self.mapping = _Mapping(6, 6, 3)
        self.synthesis = _Synthesis(6, 3, img_resolution)

    def forward(self, z: torch.Tensor, c: torch.Tensor, noise_mode: str = "const", **_: Any) -> torch.Tensor:
        return self.synthesis(self.mapping(z, c))


class _Block(torch.nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.conv1 = torch.nn.Conv2d(cout, cout, 3, stride=2, padding=1)


class ToyDiscriminator(torch.nn.Module):
    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, **_: Any) -> None:
        super().__init__()
        self.init_kwargs = {"c_dim": 0, "img_resolution": img_resolution, "img_channels": 3}
        self.b8 = _Block(3, 4)
        self.b4 = torch.nn.Linear(4 * 16, 1)

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.b8.conv1(F.leaky_relu(self.b8.conv0(img), 0.2)), 0.2)
        return self.b4(x.flatten(1))


def toy_factory(g_kwargs: dict[str, Any], d_kwargs: dict[str, Any]) -> tuple[ToyGenerator, ToyDiscriminator]:
    return ToyGenerator(**g_kwargs), ToyDiscriminator(**d_kwargs)


def _options(data: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        data=str(data),
        out=str(out),
        batch=4,
        kimg=0.02,
        tick_kimg=0.02,
        snap=1,
        aug="ada",
        p=0.5,
        seed=5,
        gamma=1.0,
        threads=1,
    )


def _rank_main(rank: int, port: int, data: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank)
    )
    result = train(_options(Path(data), Path(out)), toy_factory)
    trainer = result.trainer
    tensors = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    tensors |= {f"D.{k}": v for k, v in trainer.D.state_dict().items()}
    tensors |= {f"G_ema.{k}": v for k, v in trainer.G_ema.state_dict().items()}
    tensors["ada_p"] = torch.tensor(trainer.ada.p, dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(Path(out) / f"rank{rank}.safetensors"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_toy_discriminator_layers_are_counted() -> None:
    assert [n for n, _ in discriminator_layers(ToyDiscriminator(0, 8, 3))] == ["b8.conv0", "b8.conv1"]


def test_two_gloo_processes_match_one(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    mp.start_processes(
        _rank_main,
        args=(_free_port(), str(data), str(tmp_path / "ddp")),
        nprocs=2,
        start_method="spawn",
        join=True,
    )
    rank0 = load_file(str(tmp_path / "ddp" / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "ddp" / "rank1.safetensors"))
    single = train(_options(data, tmp_path / "single"), toy_factory).trainer
    assert (tmp_path / "ddp" / "snapshots").is_dir()  # rank 0 wrote its snapshot
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    reference = {f"G.{k}": v for k, v in single.G.state_dict().items()}
    reference |= {f"D.{k}": v for k, v in single.D.state_dict().items()}
    reference |= {f"G_ema.{k}": v for k, v in single.G_ema.state_dict().items()}
    for key, value in reference.items():
        assert torch.allclose(rank0[key], value, atol=1e-5, rtol=1e-4), key
    assert rank0["ada_p"].item() == single.ada.p
    before = ToyGenerator(6, 0, 6, 8, 3).state_dict()
    assert any(not torch.allclose(single.G.state_dict()[k], before[k]) for k in before)  # it did train
