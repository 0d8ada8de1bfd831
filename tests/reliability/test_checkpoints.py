"""Hostile or damaged checkpoints: one message naming the file and the reason, nothing run or allocated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stylesurv.app.cli import main
from stylesurv.gan.checkpoint import CheckpointError, load_generator

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rosinality_ref" / "checkpoint.pt"


class _Gadget:
    def __reduce__(self):
        return (os.system, ("echo ran > gadget_ran.txt",))


def test_a_torch_file_with_code_names_the_refused_global_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"g_ema": _Gadget()}, tmp_path / "evil.pt")
    assert main(["gan", "info", str(tmp_path / "evil.pt")]) == 1
    err = capsys.readouterr().err
    assert "refused: it needs the Python object posix.system" in err or "nt.system" in err
    assert "weights_only" not in err and "\x1b[" not in err  # not torch's advice, no terminal codes
    assert not (tmp_path / "gadget_ran.txt").exists()


def test_a_truncated_torch_checkpoint_is_named_damaged(tmp_path, capsys):
    half = tmp_path / "half.pt"
    half.write_bytes(FIXTURE.read_bytes()[: FIXTURE.stat().st_size // 2])
    assert main(["gan", "info", str(half)]) == 1
    assert f"{half}: damaged torch checkpoint" in capsys.readouterr().err


def test_safetensors_metadata_of_the_wrong_json_types_is_named_damaged(tmp_path):
    path = tmp_path / "bad.safetensors"
    save_file({"G_ema.x": torch.zeros(1)}, str(path), metadata={"format": "stylesurv-gan", "networks": "5"})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: damaged stylesurv GAN checkpoint"):
        load_generator(path)


@pytest.mark.parametrize(("key", "value"), [("z_dim", 10_000_000_000), ("w_dim", -5), ("img_resolution", 96)])
def test_absurd_sizes_are_refused_before_anything_is_allocated(tmp_path, key, value):
    import json

    config = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 16, "img_channels": 3, key: value}
    path = tmp_path / "huge.safetensors"
    meta = {
        "format": "stylesurv-gan",
        "networks": '["G_ema"]',
        "class.G_ema": "Generator",
        "config.G_ema": json.dumps(config),
    }
    save_file({"G_ema.x": torch.zeros(1)}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=rf"huge\.safetensors: G_ema has {key} = {value}"):
        load_generator(path)


def test_nan_weights_are_refused_instead_of_black_images(tmp_path):
    from stylesurv.gan.checkpoint import save_networks
    from stylesurv.gan.networks import Generator

    g = Generator(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
        mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 64, "channel_max": 8},
    )  # fmt: skip
    with torch.no_grad():
        next(g.parameters()).fill_(float("nan"))
    save_networks(tmp_path / "nan.safetensors", G_ema=g)
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):
        load_generator(tmp_path / "nan.safetensors")


def test_sample_refuses_a_nan_truncation(tmp_path, capsys):
    from stylesurv.app.pipeline import BASE_GENERATOR

    args = [
        "gan",
        "sample",
        str(BASE_GENERATOR),
        "--seeds",
        "0",
        "--trunc",
        "nan",
        "--outdir",
        str(tmp_path / "s"),
    ]
    assert main(args) == 1
    assert "--trunc must be a number" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_a_torchscript_metrics_network_is_loaded_only_with_a_warning(tmp_path, capsys):
    from stylesurv.core.errors import InputError
    from stylesurv.gan.fid import FeatureNetwork

    (tmp_path / "net.pt").write_bytes(b"not torchscript")
    with pytest.raises(InputError, match="is not a TorchScript file"):
        FeatureNetwork(tmp_path / "net.pt")
    assert "loading it runs its code" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (
            b"\x80\x02K\x01}q\x00X\x01\x00\x00\x00aK\x02sb.",
            "not a readable StyleGAN pickle",
        ),  # BUILD on an int
        (
            b"\x80\x02" + b"]" * 3000 + b"a" * 2999 + b".",
            "does not hold a snapshot dict",
        ),  # 3,000-deep nesting
        (
            b"\x80\x02}X\x01\x00\x00\x00G" + b"]" * 3000 + b"a" * 2999 + b"s.",
            "G is not a persistent StyleGAN",
        ),
        (b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.", "os.system"),  # a gadget, refused by name
        # BUILD on the reader's frozen storage-type stand-in
        (
            b"\x80\x02ctorch\nFloatStorage\nq\x00}q\x01X\x04\x00\x00\x00nameK\x05sb.",
            "does not hold a snapshot",
        ),
    ],
)
def test_hostile_pickles_are_refused_with_a_message(tmp_path, capsys, blob, message):
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(blob)
    assert main(["gan", "info", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _persistence_module(monkeypatch):
    """A stand-in torch_utils.persistence, so that a test can pickle what NVIDIA's snapshots name."""
    import sys
    import types

    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called on load: the reader has its own stand-in
        return meta

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return _reconstruct_persistent_obj


def test_a_persistent_object_with_an_infinite_version_is_refused(tmp_path, capsys, monkeypatch):
    import pickle

    reconstruct = _persistence_module(monkeypatch)

    class Network:
        def __reduce__(self):
            meta = {"type": "class", "version": float("inf"), "class_name": "Generator", "state": {}}
            return (reconstruct, (meta,))

    path = tmp_path / "snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Network()}, protocol=2))
    assert main(["gan", "info", str(path)]) == 1
    assert "version is inf, not a number" in capsys.readouterr().err


@pytest.mark.parametrize("numel", [-5, 1 << 40])
def test_a_storage_of_a_negative_or_absurd_size_is_refused_before_allocating(tmp_path, capsys, numel):
    import io
    import pickle
    import zipfile

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if obj == "STORAGE" else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"note": "torch_utils.persistence", "G_ema": "STORAGE"})
    path = tmp_path / "snapshot.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/data/0", b"\x00" * 16)
    assert main(["gan", "info", str(path)]) == 1
    assert f"a tensor storage claims {numel} elements" in capsys.readouterr().err
