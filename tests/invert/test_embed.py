"""The embedding driver: patient selection, outputs, resume after interruption, and torchrun sharding."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylesurv.invert.embed as embed_module
from stylesurv.core.errors import InputError
from stylesurv.core.latents import load_latents
from stylesurv.invert.embed import (
    EmbedConfig,
    Networks,
    embed_folder,
    image_seed,
    usable_patients,
    work_folder,
)
from stylesurv.invert.encoder import new_encoder
from stylesurv.invert.project import ProjectConfig
from tests.invert.tiny import make_aligned, tiny_generator

REPO = Path(__file__).resolve().parents[2]
SHA = "0" * 64
CONFIG = EmbedConfig(project=ProjectConfig(space="wplus", steps=4, w_avg_samples=500), batch=3)


@pytest.fixture(scope="module")
def aligned(tmp_path_factory) -> Path:
    return make_aligned(tmp_path_factory.mktemp("aligned"))


@pytest.fixture(scope="module")
def reference(aligned, tmp_path_factory) -> Path:
    """An uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("ref") / "latents.npz"
    embed_folder(aligned, Networks(tiny_generator(), SHA), out, CONFIG)
    return out


def test_output_holds_usable_patients_codes_and_metrics(aligned, reference, tmp_path) -> None:
    latents = load_latents(reference)
    assert latents.patient_id.tolist() == [f"P{i:03d}" for i in range(7)]
    assert latents.wplus.shape == (7, 6, 32) and latents.w.shape == (7, 32)
    assert set(latents.metrics) == {"mse", "psnr", "ssim", "mse_face", "psnr_face", "ssim_face"}
    has_mask = np.arange(7) % 2 == 0
    assert np.isfinite(latents.metrics["psnr_face"][has_mask]).all()
    assert np.isnan(latents.metrics["psnr_face"][~has_mask]).all()
    assert latents.meta["generator_sha256"] == SHA and latents.meta["space"] == "wplus"
    assert not work_folder(reference).exists()
    # The style codes are those of the embedded W+ codes under the embedding generator, and round-trip.
    from stylesurv.gan.stylespace import styles_from_codes

    expected = styles_from_codes(tiny_generator(), latents.wplus)
    np.testing.assert_allclose(latents.codes("styles"), expected, rtol=1e-5, atol=1e-6)
    assert latents.subset(["P003", "P001"]).styles.tolist() == latents.styles[[3, 1]].tolist()


def test_resume_after_interruption_gives_the_same_file(aligned, reference, tmp_path, monkeypatch) -> None:
    out = tmp_path / "latents.npz"
    calls = []
    original = embed_module.embed_batch

    def failing(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(embed_module, "embed_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        embed_folder(aligned, Networks(tiny_generator(), SHA), out, CONFIG)
    assert not out.exists()
    assert len(list(work_folder(out).glob("chunk_*.npz"))) == 2
    calls.clear()
    monkeypatch.setattr(embed_module, "embed_batch", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    embed_folder(aligned, Networks(tiny_generator(), SHA), out, CONFIG)
    assert len(calls) == 1  # only the missing chunk was computed
    assert out.read_bytes() == reference.read_bytes()


def test_changed_settings_discard_stale_chunks(aligned, tmp_path, monkeypatch) -> None:
    out = tmp_path / "latents.npz"
    work_folder(out).mkdir()
    (work_folder(out) / "plan.json").write_text('{"key": "other"}')
    (work_folder(out) / "chunk_000000.npz").write_bytes(b"stale")
    config = EmbedConfig(project=ProjectConfig(space="w", steps=0, w_avg_samples=500), batch=4)
    networks = Networks(tiny_generator(), SHA)
    latents = embed_folder(aligned, networks, out, config, reconstructions=tmp_path / "rec")
    assert latents is not None and latents.wplus is None and len(latents) == 7
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [f"P{i:03d}.png" for i in range(7)]


def test_encoder_initialises_the_codes(aligned, tmp_path) -> None:
    G = tiny_generator()
    encoder = new_encoder(G, seed=3, channel_base=256, channel_max=32)
    config = EmbedConfig(project=ProjectConfig(space="wplus", steps=0, w_avg_samples=500), batch=8)
    latents = embed_folder(aligned, Networks(G, SHA, encoder, "e" * 64), tmp_path / "l.npz", config)
    images = torch.stack(
        [torch.from_numpy(np.array(Image.open(aligned / f"P{i:03d}.png"))).permute(2, 0, 1) for i in range(7)]
    )
    with torch.no_grad():
        _, ws = encoder(images.float() / 127.5 - 1)
    assert np.allclose(latents.wplus, ws.numpy(), atol=1e-6)
    assert latents.meta["encoder_sha256"] == "e" * 64


def test_bad_inputs_are_named(aligned, tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        usable_patients(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "qc.csv").write_text("patient_id,status\n../etc,ok\n")
    with pytest.raises(InputError, match="line 2"):
        usable_patients(bad)
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(big / "A.png")
    with pytest.raises(InputError, match="--resolution 16"):
        embed_folder(big, Networks(tiny_generator(), SHA), tmp_path / "x.npz", CONFIG)


def test_an_images_code_depends_on_the_run_seed_and_its_pixels_only(aligned, reference, tmp_path) -> None:
    """An image's random draws come from image_seed(run seed, pixels), so its code does not depend on
    which chunk it lands in, its position there or its batch-mates; and the run seed does change it."""
    networks = Networks(tiny_generator(), SHA)
    # batch 2 regroups the 7 patients: chunks P0 P1 | P2 P3 | P4 P5 | P6 instead of P0 P1 P2 | P3 P4 P5 | P6,
    # so P2..P5 change chunk, position and batch-mates (P2 moves from position 2 to 0, P3 from 0 to 1, ...).
    regrouped = embed_folder(aligned, networks, tmp_path / "b2.npz", EmbedConfig(CONFIG.project, batch=2))
    assert regrouped is not None
    np.testing.assert_allclose(regrouped.wplus, load_latents(reference).wplus, rtol=0, atol=1e-5)
    # The check above is not vacuous: another run seed moves every code by far more than that tolerance.
    reseeded = embed_folder(
        aligned, networks, tmp_path / "s1.npz", EmbedConfig(CONFIG.project, batch=2, seed=1)
    )
    assert reseeded is not None
    moved = np.abs(reseeded.wplus - regrouped.wplus).max(axis=(1, 2))
    assert (moved > 1e-2).all(), moved


def test_image_seed_is_distinct_per_run_seed_and_image_and_the_same_in_every_process() -> None:
    images = [torch.full((3, 4, 4), v) for v in (-1.0, 0.0, 0.5)]
    seeds = [image_seed(s, image) for s in (0, 1) for image in images]
    assert len(set(seeds)) == len(seeds) and all(0 <= v < 2**63 for v in seeds)
    # the same 8-bit pixels give the same seed (a float rounding below half a grey level does not count)
    assert image_seed(0, images[2] + 1e-4) == image_seed(0, images[2])
    # Ranks and resumed runs are separate interpreters: the seed must not depend on per-process state such as
    # Python's randomised str hash (PYTHONHASHSEED).
    code = (
        "import torch; from stylesurv.invert.embed import image_seed; "
        "print(*[image_seed(s, torch.full((3, 4, 4), v)) for s in (0, 1) for v in (-1.0, 0.0, 0.5)])"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == [str(v) for v in seeds]


CHILD = """
import sys
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads(1)
from stylesurv.gan.dist import close_world
from stylesurv.invert.embed import EmbedConfig, Networks, embed_folder
from stylesurv.invert.project import ProjectConfig
from tests.invert.tiny import tiny_generator
config = EmbedConfig(project=ProjectConfig(space="wplus", steps=4, w_avg_samples=500), batch=3)
embed_folder({aligned!r}, Networks(tiny_generator(), {sha!r}), {out!r}, config)
close_world()
"""


def test_two_process_torchrun_equals_single_process(aligned, reference, tmp_path) -> None:
    out = tmp_path / "sharded.npz"
    script = tmp_path / "child.py"
    child = CHILD.format(repo=str(REPO), aligned=str(aligned), sha=SHA, out=str(out))
    script.write_text(textwrap.dedent(child))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    command = [*launcher, str(script)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes() == reference.read_bytes()
