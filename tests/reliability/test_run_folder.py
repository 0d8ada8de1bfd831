"""The run folder as a ledger: interrupted or refused reruns leave the finished run intact and consistent,
predict trusts only what the stage records say, corrupt outputs are redone, one process at a time."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from stylesurv.app.pipeline import read_run, run_pipeline
from stylesurv.core.errors import InputError
from stylesurv.core.rundir import RunDir
from stylesurv.faces.folder import AlignConfig
from stylesurv.gan.checkpoint import load_networks, save_networks
from tests.pipeline.test_run import _assert_same, _config, _outputs


def _copy(reference, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    return out


def _killed_before(monkeypatch, stage: str) -> None:
    real = RunDir.run_stage

    def run_stage(self, name, *args, **kwargs):
        if name == stage:
            raise KeyboardInterrupt(f"killed before {name}")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(RunDir, "run_stage", run_stage)


def _other_generator(world, tmp_path: Path) -> Path:
    networks = load_networks(world["generator"])
    path = tmp_path / "other_G.safetensors"
    with torch.no_grad():
        for module in networks.values():
            for p in module.parameters():
                p.mul_(1.01)
    save_networks(path, **networks)
    return path


def test_an_interrupted_rerun_with_another_generator_keeps_the_run_and_predict_consistent(
    world,
    reference,
    tmp_path,
    monkeypatch,
):
    out = _copy(reference, tmp_path)
    other = _other_generator(world, tmp_path)
    config = dataclasses.replace(_config(world, out), generator=str(other))
    _killed_before(monkeypatch, "finetune")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config)
    manifest = RunDir(out).read_manifest()
    assert manifest["config"]["generator"] == str(world["generator"])  # what the finished stages used
    assert manifest["running"]["config"]["generator"] == str(other)  # what was asked, and did not finish
    assert read_run(out).generator == out / "finetune" / "generator.safetensors"

    # killed later: the new fine-tuned generator is in place, the embedding is the old one's -> refused
    monkeypatch.undo()
    _killed_before(monkeypatch, "embed")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config)
    with pytest.raises(InputError, match="not the one the run embedded its cohort with"):
        read_run(out)


def test_an_interrupted_rerun_with_new_embed_settings_leaves_the_finished_stages(
    world,
    reference,
    tmp_path,
    monkeypatch,
):
    import stylesurv.invert.embed as embed_module

    out = _copy(reference, tmp_path)
    config = _config(world, out)
    steps = dataclasses.replace(config.embed.project, steps=5)
    real, calls = embed_module.embed_batch, []

    def dies_in_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed inside embedding")
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "embed_batch", dies_in_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(dataclasses.replace(config, embed=dataclasses.replace(config.embed, project=steps)))
    _assert_same(reference[1], _outputs(out))  # embed/ and the fits on it are the finished run's
    assert set(read_run(out).bundles) == {"coxnet", "clinical"}
    monkeypatch.setattr(embed_module, "embed_batch", real)
    assert all(stage.cached for stage in run_pipeline(config).stages)  # nothing of the old run was lost


def test_a_bad_setting_on_a_finished_run_is_refused_before_anything_changes(
    world,
    reference,
    tmp_path,
):
    out = _copy(reference, tmp_path)
    photos = sorted(p.name for p in (out / "aligned").glob("*.png"))
    config = dataclasses.replace(_config(world, out), align=AlignConfig(resolution=64))
    with pytest.raises(InputError, match="align.resolution is 64 but the generator"):
        run_pipeline(config)
    assert sorted(p.name for p in (out / "aligned").glob("*.png")) == photos
    assert "running" not in RunDir(out).read_manifest()


def test_a_truncated_latents_file_is_redone_not_trusted(world, reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    latents = out / "embed" / "latents.npz"
    latents.write_bytes(latents.read_bytes()[:100])
    with pytest.raises(InputError, match="changed since the run wrote it"):
        read_run(out)
    result = run_pipeline(_config(world, out))
    assert "embed: its output" in capsys.readouterr().err
    assert not next(s for s in result.stages if s.name == "embed").cached
    _assert_same(reference[1], _outputs(out))


def test_a_second_run_into_the_same_folder_is_refused(world, reference, tmp_path):
    out = _copy(reference, tmp_path)
    with RunDir(out).locked(), pytest.raises(InputError, match=r"run folder .* is in use by PID \d+"):
        run_pipeline(_config(world, out))


def test_a_moved_generator_is_named_as_missing(world, reference, tmp_path):
    out = _copy(reference, tmp_path)
    (out / "finetune" / "generator.safetensors").rename(tmp_path / "moved.safetensors")
    with pytest.raises(
        InputError, match=r"generator.safetensors: the generator the run embedded .* is missing"
    ):
        read_run(out)


def test_a_run_folder_is_usable_from_anywhere_and_after_a_move(tmp_path, monkeypatch):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "g.bin").write_bytes(b"generator")
    monkeypatch.chdir(inputs)
    run = RunDir("../run")
    run.run_stage("a", {}, {}, lambda out: (out / "x").write_text("x"))
    run.run_stage("b", {}, {"generator": "g.bin", "a": run.stage_path("a")}, lambda out: None)
    monkeypatch.chdir(tmp_path.parent)
    shutil.move(tmp_path / "run", tmp_path / "moved")
    moved = RunDir(tmp_path / "moved")
    paths = moved.stage_record("b")["paths"]
    assert moved.resolve_recorded(paths["generator"]) == inputs / "g.bin"  # outside: absolute
    assert moved.resolve_recorded(paths["a"]) == moved.stage_path("a")  # inside: relative to the run


def test_a_stage_command_refuses_an_output_another_process_is_writing(tmp_path, capsys):
    from stylesurv.app.cli import main
    from stylesurv.core.lock import folder_lock

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    (cohort / "clinical.csv").write_text("patient_id,time,event\nP1,5,1\n")
    out = tmp_path / "aligned"
    with folder_lock(out, what="output"):
        assert main(["align", str(cohort), "--out", str(out), "--resolution", "64"]) == 1
    assert f"output {out} is in use by PID" in capsys.readouterr().err


@pytest.mark.parametrize("part", ["model.json", "arrays.safetensors"])
def test_a_truncated_bundle_is_named(reference, tmp_path, part):
    from stylesurv.survival.bundle import load_bundle

    bundle = tmp_path / "coxnet"
    shutil.copytree(reference[0] / "fit" / "coxnet", bundle)
    data = (bundle / part).read_bytes()
    (bundle / part).write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"coxnet: unreadable survival bundle .*fit it again"):
        load_bundle(bundle)


def test_a_full_disk_mid_rerun_is_one_message_and_the_finished_run_is_intact(
    world, reference, tmp_path, monkeypatch, capsys
):
    import errno

    import stylesurv.invert.embed as embed_module
    from stylesurv.app.cli import main
    from stylesurv.app.config import to_toml

    out = _copy(reference, tmp_path)
    config = _config(world, out)
    steps = dataclasses.replace(config.embed.project, steps=4)
    path = tmp_path / "run.toml"
    path.write_text(
        to_toml(dataclasses.replace(config, embed=dataclasses.replace(config.embed, project=steps)))
    )

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / ".stages" / "work" / "embed"))

    monkeypatch.setattr(embed_module, "embed_batch", full)
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device; nothing already finished was changed" in err and "Traceback" not in err
    _assert_same(reference[1], _outputs(out))
    assert set(read_run(out).bundles) == {"coxnet", "clinical"}
