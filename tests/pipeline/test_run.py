"""`stylesurv run`: the whole pipeline on a tiny world, and kill-and-resume at every stage boundary and
inside embedding giving the same final outputs as an uninterrupted run (stylesurv.pipeline)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stylesurv.app.cli import main
from stylesurv.app.config import FINETUNE_DEFAULTS, FIT_DEFAULTS, RunConfig
from stylesurv.app.pipeline import read_run, run_pipeline
from stylesurv.cohort.synthetic import make_world, write_world
from stylesurv.core.rundir import RunDir
from stylesurv.faces.folder import AlignConfig
from stylesurv.gan.checkpoint import save_networks
from stylesurv.gan.networks import Discriminator, Generator
from stylesurv.invert.embed import EmbedConfig
from stylesurv.invert.project import ProjectConfig

STAGES = ["validate", "aligned", "finetune", "encoder", "embed", "fit/coxnet", "fit/clinical", "explain"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("world")
    write_world(make_world("cohort", 40, seed=5), root / "cohort", resolution=32, unaligned=True)
    torch.manual_seed(0)
    g_kwargs = {
        "mapping_kwargs": {"num_layers": 2},
        "synthesis_kwargs": {"channel_base": 256, "channel_max": 16},
    }
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, **g_kwargs)
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=256, channel_max=16)
    save_networks(root / "G.safetensors", G_ema=G, G=G, D=D)
    return {"cohort": root / "cohort", "generator": root / "G.safetensors"}


def _config(world: dict[str, Path], out: Path) -> RunConfig:
    return RunConfig(
        cohort=str(world["cohort"]),
        generator=str(world["generator"]),
        out=str(out),
        encoder_steps=4,
        landmarks=str(world["cohort"] / "landmarks.csv"),
        align=AlignConfig(resolution=32),
        finetune=dataclasses.replace(FINETUNE_DEFAULTS, kimg=0.016, batch=8, freeze_d=1),
        embed=EmbedConfig(project=ProjectConfig(space="wplus", steps=3), batch=16),
        fit=dataclasses.replace(
            FIT_DEFAULTS, models=("coxnet", "clinical"), clinical=("age", "stage"), folds=3, permutations=2
        ),
    )


def _outputs(run_dir: Path) -> dict[str, object]:
    """The final results that must not depend on interruptions."""
    with np.load(run_dir / "embed" / "latents.npz") as data:
        latents = {key: data[key] for key in data.files}
    explain = json.loads((run_dir / "explain" / "summary.json").read_text())
    return {
        "latents": latents,
        "generator": load_file(run_dir / "finetune" / "generator.safetensors"),
        "coxnet": json.loads((run_dir / "fit" / "coxnet" / "cv_results.json").read_text()),
        "clinical": json.loads((run_dir / "fit" / "clinical" / "cv_results.json").read_text()),
        "direction": np.load(run_dir / "explain" / "direction.npy"),
        "correlations": explain.get("truth_correlations"),
    }


def _assert_same(a: dict[str, object], b: dict[str, object]) -> None:
    assert a["generator"].keys() == b["generator"].keys()
    for key in a["generator"]:
        torch.testing.assert_close(a["generator"][key], b["generator"][key], rtol=0, atol=0, msg=key)
    assert a["latents"].keys() == b["latents"].keys()
    for key in a["latents"]:
        np.testing.assert_array_equal(a["latents"][key], b["latents"][key], err_msg=key)
    assert a["coxnet"] == b["coxnet"] and a["clinical"] == b["clinical"]
    np.testing.assert_array_equal(a["direction"], b["direction"])
    assert a["correlations"] == b["correlations"]


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("reference") / "run"
    run_pipeline(_config(world, out))
    return out, _outputs(out)


def test_uninterrupted_run_writes_every_stage_and_the_report(reference):
    out, _ = reference
    run = RunDir(out)
    assert all(run.stage_key(name) for name in STAGES)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 0 and set(STAGES) <= set(manifest["stages"])
    assert (out / "report.html").stat().st_size > 10_000
    artifacts = read_run(out)
    assert artifacts.generator == out / "finetune" / "generator.safetensors"
    assert sorted(artifacts.bundles) == ["clinical", "coxnet"]
    # The explain stage finds the face subspace and refits the model inside and outside it.
    summary = json.loads((out / "explain" / "summary.json").read_text())
    assert summary["face_subspace"]["n_patients"] == 16 and len(summary["face_subspace"]["shares"]) > 1
    refit = summary["face_subspace_refit"]
    assert refit["dim"] == summary["face_subspace"]["dim"] and {"c_index_all", "c_index_rest"} <= set(refit)


def test_second_run_skips_every_stage(world, reference):
    out, outputs = reference
    result = run_pipeline(_config(world, out))
    assert all(stage.cached for stage in result.stages)
    _assert_same(outputs, _outputs(out))


def test_kill_at_every_stage_boundary_and_inside_embedding_resumes_identically(
    world, reference, tmp_path, monkeypatch
):
    import stylesurv.invert.embed as embed_module

    _, expected = reference
    out = tmp_path / "run"
    config = _config(world, out)
    real_run_stage = RunDir.run_stage
    real_embed_batch = embed_module.embed_batch
    state = {"kill_before": None, "embed_calls": 0, "kill_embed_at": None}

    def run_stage(self, name, *args, **kwargs):
        if name == state["kill_before"]:
            raise KeyboardInterrupt(f"killed before {name}")
        return real_run_stage(self, name, *args, **kwargs)

    def embed_batch(*args, **kwargs):
        state["embed_calls"] += 1
        if state["embed_calls"] == state["kill_embed_at"]:
            raise KeyboardInterrupt("killed inside embedding")
        return real_embed_batch(*args, **kwargs)

    monkeypatch.setattr(RunDir, "run_stage", run_stage)
    monkeypatch.setattr(embed_module, "embed_batch", embed_batch)
    for name in STAGES[1:]:
        state["kill_before"] = name
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(config)
        if name == "embed":  # now also die after the first of the three chunks of the embedding
            state["kill_before"], state["kill_embed_at"] = None, 2
            with pytest.raises(KeyboardInterrupt):
                run_pipeline(config)
            assert len(list((out / ".stages" / "work" / "embed").glob("**/chunk_*.npz"))) == 1
    state["kill_before"], state["kill_embed_at"] = None, None
    calls_before = state["embed_calls"]
    run_pipeline(config)
    assert state["embed_calls"] == calls_before  # embedding had already finished; nothing redone
    _assert_same(expected, _outputs(out))


def test_adding_a_model_fits_only_that_model(world, reference, tmp_path):
    import dataclasses
    import shutil

    out, outputs = reference
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    config = _config(world, copy)
    fit = dataclasses.replace(config.fit, models=[*config.fit.models, "coxph"])
    result = run_pipeline(dataclasses.replace(config, fit=fit))
    assert [stage.name for stage in result.stages if not stage.cached] == ["fit/coxph"]
    _assert_same(outputs, _outputs(copy))
    assert sorted(read_run(copy).bundles) == ["clinical", "coxnet", "coxph"]


def test_run_command_needs_a_cohort_and_a_generator(tmp_path):
    assert main(["run", "--out", str(tmp_path / "r")]) == 1
    assert (
        main(["run", "--cohort", str(tmp_path), "--generator", str(tmp_path / "g"), "--out", str(tmp_path)])
        == 1
    )


def test_run_command_rejects_an_unknown_nuisance_source(world, tmp_path, capsys):
    args = ["run", "--cohort", str(world["cohort"]), "--generator", str(world["generator"])]
    assert main([*args, "--out", str(tmp_path / "r"), "--remove-nuisance", "sky"]) == 1
    assert "--remove-nuisance must be one of" in capsys.readouterr().err.replace("\n", " ")
    assert not (tmp_path / "r").exists()  # refused before any stage ran


def test_adjusted_model_plan_and_the_explained_bundle(monkeypatch) -> None:
    import stylesurv.app.pipeline as pipeline
    from stylesurv.app.pipeline import _explained_bundle, _model_plan
    from stylesurv.core.errors import InputError

    monkeypatch.setattr(pipeline, "has_direction", lambda path: True)  # names only: no bundles on disk
    config = RunConfig(fit=dataclasses.replace(FIT_DEFAULTS, clinical=("age", "stage")))
    assert _model_plan("adjusted", config) == ("coxnet_adjusted", "coxnet", ["age", "stage"], "joint")
    assert _model_plan("fusion", config) == ("coxnet_fusion", "coxnet", ["age", "stage"], "late")
    with pytest.raises(InputError, match="adjusted model needs clinical covariates"):
        _model_plan("adjusted", RunConfig())
    bundles = {name: Path(name) for name in ("coxnet", "deepsurv", "coxnet_adjusted")}
    assert _explained_bundle(bundles, "") == Path("coxnet_adjusted")  # adjusted first
    assert _explained_bundle(bundles, "coxnet") == Path("coxnet")
    assert _explained_bundle({"deepsurv": Path("d")}, "") is None  # nothing linear to explain
    with pytest.raises(InputError, match="explain.model 'coxph'"):
        _explained_bundle(bundles, "coxph")


def test_counterfactual_embedding_uses_the_run_networks_and_resumes(reference):
    from stylesurv.app.counterfactual import embed_run_counterfactuals
    from stylesurv.core.latents import load_latents

    out, _ = reference
    cohort = load_latents(out / "embed" / "latents.npz")
    swapped = embed_run_counterfactuals(out, max_patients=5, seed=1)
    ids = swapped.patient_id.tolist()
    assert len(ids) == 5 and set(ids) <= set(cohort.patient_id.tolist())
    same = cohort.subset(ids)
    assert swapped.wplus.shape == same.wplus.shape and not np.allclose(swapped.wplus, same.wplus)
    assert (out / "counterfactual" / "aligned" / "qc.csv").is_file()
    again = embed_run_counterfactuals(out, max_patients=5, seed=1)  # done: read back, not re-embedded
    np.testing.assert_array_equal(again.wplus, swapped.wplus)


def test_run_removes_counterfactual_nuisance_when_asked(world, reference, tmp_path):
    import dataclasses
    import shutil

    from stylesurv.core.errors import InputError

    out, _ = reference
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    config = _config(world, copy)
    explain = dataclasses.replace(config.explain, remove_nuisance="counterfactual", counterfactual_patients=8)
    result = run_pipeline(dataclasses.replace(config, explain=explain))
    ran = [stage.name for stage in result.stages if not stage.cached]
    assert ran == ["counterfactual", "explain"]  # everything before is reused
    summary = json.loads((copy / "explain" / "summary.json").read_text())
    removal = summary["remove_nuisance"]
    assert removal["nuisance_source"] == "counterfactual" and removal["n_directions"] >= 1
    assert {"c_index_plain", "c_index_removed"} <= set(removal)
    assert "codes without nuisance directions" in (copy / "report.html").read_text()
    typo = dataclasses.replace(config.explain, remove_nuisance="backgrounds")
    with pytest.raises(InputError, match="explain.remove_nuisance must be one of"):
        run_pipeline(dataclasses.replace(config, explain=typo))
    share = dataclasses.replace(config.explain, face_threshold=80.0)
    with pytest.raises(InputError, match="explain.face_threshold must lie between 0 and 1"):
        run_pipeline(dataclasses.replace(config, explain=share))


def test_demo_redraws_a_cohort_from_other_settings(tmp_path):
    from stylesurv.app.pipeline import DemoSettings, _demo_cohort_ready

    settings, cohort = DemoSettings(n=4, resolution=32), tmp_path / "cohort"
    assert not _demo_cohort_ready(cohort, settings)
    write_world(make_world("cohort", 4, settings.seed), cohort, resolution=32)
    assert _demo_cohort_ready(cohort, settings)
    assert not _demo_cohort_ready(cohort, DemoSettings(n=5, resolution=32))
    # a cohort drawn before health effects were kept inside the face is redrawn
    write_world(make_world("cohort", 4, settings.seed, beyond_face=True), cohort, resolution=32)
    assert not _demo_cohort_ready(cohort, settings)


def test_style_space_run_refits_and_explains_in_style_space(world, reference, tmp_path):
    import dataclasses
    import shutil

    from stylesurv.gan.stylespace import style_dim
    from stylesurv.survival.bundle import load_bundle

    out, _ = reference
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    config = _config(world, copy)
    models = ["coxnet", "coxnet_face", "clinical"]
    fit = dataclasses.replace(config.fit, space="styles", models=models, face_threshold=0.3)
    result = run_pipeline(dataclasses.replace(config, fit=fit))
    cached = {stage.name for stage in result.stages if stage.cached}
    # the run's features were style codes already: the plain fits are reused, only the new model is fitted
    assert {"validate", "aligned", "finetune", "encoder", "embed", "fit/coxnet", "fit/clinical"} <= cached
    assert not cached & {"face_subspace", "fit/coxnet_face", "explain"}, cached
    bundle = load_bundle(copy / "fit" / "coxnet")
    generator = read_run(copy).generator
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.gan.face_subspace import load_face_subspace

    dim = style_dim(load_generator(generator))
    assert bundle.spec.space == "styles" and bundle.latent_direction().shape == (dim,)
    assert bundle.restriction is None
    # The face-bound model: fitted on style codes kept to the face subspace at 0.3; explained by default.
    face = load_bundle(copy / "fit" / "coxnet_face")
    subspace = load_face_subspace(copy / "face_subspace" / "face_subspace.npz", 0.3)
    assert face.restriction is not None and face.restriction.basis.shape == (subspace.dim, dim)
    d = np.load(copy / "explain" / "direction.npy").astype(np.float64)
    np.testing.assert_allclose(face.restriction.project(d), d, atol=1e-5)
    summary = json.loads((copy / "explain" / "summary.json").read_text())
    assert summary["space"] == "styles" and d.shape == (dim,)
    assert summary["inputs"]["bundle"].endswith("coxnet_face")
    assert summary["face_bound"] == {"dim": subspace.dim, "threshold": 0.3}
    assert f"kept to the {subspace.dim} directions" in (copy / "report.html").read_text()
    assert summary["attribution"]["n_patients"] > 0 and summary["face_subspace"]["n_components"] > 1
    assert "face_subspace_refit" in summary and (copy / "report.html").stat().st_size > 10_000
    assert (copy / "explain" / "face_subspace.npz").is_file()


def test_demo_config_names_the_shipped_networks_and_resolves(tmp_path):
    """The demo runs on the generator and encoder shipped inside the package (a moved module once pointed
    the demo at a folder that does not exist, and only `make demo` noticed)."""
    from stylesurv.app.pipeline import BASE_ENCODER, BASE_GENERATOR, DemoSettings, demo_config, resolved
    from stylesurv.gan.checkpoint import generator_shape

    assert BASE_GENERATOR.is_file() and (BASE_ENCODER / "encoder.safetensors").is_file()
    settings = DemoSettings()
    config = demo_config(tmp_path, settings)
    assert generator_shape(config.generator)["img_resolution"] == settings.resolution
    (tmp_path / "cohort").mkdir()
    (tmp_path / "cohort" / "landmarks.csv").write_text("patient_id\n")
    assert resolved(config).align.resolution == settings.resolution


def test_a_model_without_a_direction_is_not_explained_and_the_next_one_is(tmp_path, monkeypatch, capsys):
    import stylesurv.app.pipeline as pipeline

    bundles = {name: tmp_path / name for name in ("coxnet_adjusted", "coxnet")}
    assert pipeline.PRIMARY_MODELS.index("coxnet_adjusted") < pipeline.PRIMARY_MODELS.index("coxnet")
    monkeypatch.setattr(pipeline, "has_direction", lambda path: path.name == "coxnet")
    assert pipeline._explained_bundle(bundles, "") == tmp_path / "coxnet"
    assert "coxnet_adjusted: the model kept no latent coefficient" in capsys.readouterr().err
    monkeypatch.setattr(pipeline, "has_direction", lambda path: False)
    assert pipeline._explained_bundle(bundles, "") is None
    assert "the explain stage is skipped" in capsys.readouterr().err


def test_has_direction_reads_the_bundle(reference):
    from stylesurv.app.pipeline import has_direction

    assert has_direction(reference[0] / "fit" / "coxnet")
