"""Seeded, bounded fuzzing: random corruptions of a valid cohort and of checkpoints never give a traceback
(exit 3) and never change the inputs."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import pytest
import torch

from stylesurv.app.cli import main
from stylesurv.cohort.synthetic import make_world, write_world
from stylesurv.core.errors import StylesurvError
from stylesurv.gan.checkpoint import load_generator, save_networks
from stylesurv.gan.networks import Generator

ROSINALITY = Path(__file__).resolve().parents[1] / "fixtures" / "rosinality_ref" / "checkpoint.pt"
CASES = 24


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _corrupt(data: bytes, rng: random.Random) -> bytes:
    """One of: flip bytes, truncate, insert junk, duplicate a slice, or swap in odd text."""
    kind = rng.randrange(5)
    data = bytearray(data)
    if kind == 0 and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        data = data[: rng.randrange(len(data) + 1)]
    elif kind == 2:
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 3 and data:
        a = rng.randrange(len(data))
        data[a:a] = data[a : a + rng.randint(1, 200)]
    else:
        junk = rng.choice(["\ufeff", "=1+1", "\x00", "；", "1e999", "-0", "nan", "\r\n", '"', "Zoë", "١"])
        at = rng.randrange(len(data) + 1)
        data[at:at] = junk.encode("utf-8")
    return bytes(data)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_world(
        make_world("cohort", 8, 2), tmp_path_factory.mktemp("c") / "c", 32, fmt="png", workers=1
    )


@pytest.mark.parametrize("case", range(CASES))
def test_validate_survives_a_corrupted_cohort(cohort, tmp_path, capsys, case):
    rng = random.Random(case)
    folder = tmp_path / "c"
    shutil.copytree(cohort, folder)
    victims = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".csv", ".png"))
    for victim in rng.sample(victims, k=rng.randint(1, 3)):
        victim.write_bytes(_corrupt(victim.read_bytes(), rng))
    before = _hashes(folder)
    code = main(["validate", str(folder), "--workers", "1"])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert _hashes(folder) == before


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    g = Generator(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
        mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 64, "channel_max": 8},
    )  # fmt: skip
    path = tmp_path_factory.mktemp("g") / "g.safetensors"
    save_networks(path, G_ema=g)
    return path


@pytest.mark.parametrize("source", ["native", "rosinality"])
@pytest.mark.parametrize("case", range(CASES // 2))
def test_a_corrupted_checkpoint_is_refused_with_a_message(native, tmp_path, capsys, source, case):
    rng = random.Random(1000 + case)
    original = native if source == "native" else ROSINALITY
    path = tmp_path / original.name
    path.write_bytes(_corrupt(original.read_bytes(), rng))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    code = main(["gan", "info", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 1) and "Traceback" not in err and "unexpected" not in err, err
    try:
        load_generator(path)
    except StylesurvError as exc:
        assert str(path) in str(exc)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
