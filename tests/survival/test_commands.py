"""`stylesurv fit` end to end on a tiny cohort folder, and the CNN baseline on tiny photos."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylesurv.app.cli import main
from stylesurv.core.latents import Latents, save_latents
from stylesurv.survival.bundle import load_bundle
from stylesurv.survival.cnn import CoxCNN, load_aligned_images
from stylesurv.survival.data import SurvivalData
from stylesurv.survival.metrics import harrell_c

from .conftest import weibull_ph

N = 60


@pytest.fixture
def cohort(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(N, 8))
    y = weibull_ph(N, 1.5 * w[:, 0], seed=1)
    ids = [f"s{i:02d}" for i in range(N)]
    (tmp_path / "cohort").mkdir()
    pd.DataFrame({"patient_id": ids, "time": y["time"], "event": y["event"].astype(int),
                  "age": rng.normal(60, 8, N).round(), "stage": rng.choice(["I", "II"], N)}).to_csv(
        tmp_path / "cohort" / "clinical.csv", index=False)  # fmt: skip
    save_latents(tmp_path / "latents.npz", Latents(patient_id=ids, w=w.astype(np.float32)))
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    for i, pid in enumerate(ids):  # brightness carries the signal
        level = int(np.clip(128 + 60 * w[i, 0], 0, 255))
        Image.fromarray(np.full((8, 8, 3), level, np.uint8)).save(aligned / f"{pid}.png")
    status = ["ok"] * (N - 1) + ["no_face"]
    pd.DataFrame({"patient_id": ids, "status": status}).to_csv(aligned / "qc.csv", index=False)
    return tmp_path


def _fit(root, *args: str, permutations: int = 0) -> int:
    options = ["--folds", "2", "--permutations", str(permutations)]
    return main(["-q", "fit", "--cohort", str(root / "cohort"), *options, *args])


def test_fit_command_writes_a_loadable_bundle(cohort) -> None:
    out = cohort / "fit"
    latents = str(cohort / "latents.npz")
    args = [
        "--latents",
        latents,
        "--model",
        "coxnet",
        "--clinical",
        "age,stage",
        "--out",
        str(out),
        "--times",
        "0.3,0.6",
    ]
    code = _fit(cohort, *args, permutations=2)
    assert code == 0
    results = json.loads((out / "cv_results.json").read_text())
    assert results["model"] == "coxnet+clinical" and results["permutation"]["n"] == 2
    assert results["auc_times"] == [0.3, 0.6] and "auc@0.3" in results["folds"][0]
    bundle = load_bundle(out)
    assert bundle.spec.clinical == ("age", "stage") and bundle.latent_direction().shape == (8,)


def test_fit_command_joint_fusion_adjusts_coxnet(cohort) -> None:
    out = cohort / "joint"
    args = ["--latents", str(cohort / "latents.npz"), "--clinical", "age", "--fusion", "joint"]
    assert _fit(cohort, *args, "--l1-ratio", "0.7", "--out", str(out)) == 0
    bundle = load_bundle(out)
    assert bundle.model_name == "coxnet|clinical" and bundle.adjusted_for == ("age",)
    params = bundle.meta["model"]["params"]
    assert params["unpenalized"] == 1 and params["l1_ratio"] == 0.7  # age: one standardised column


def test_fit_command_clinical_only(cohort) -> None:
    assert _fit(cohort, "--model", "clinical", "--clinical", "age", "--out", str(cohort / "clin")) == 0
    assert load_bundle(cohort / "clin").model_name == "clinical"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "svm"], "--model"),
        (["--model", "coxnet"], "--latents"),
        (["--model", "clinical", "--clinical", "bmi"], "bmi"),
        (["--model", "cnn"], "--aligned"),
        (["--model", "clinical", "--clinical", "age", "--times", "1y"], "--times"),
        (["--model", "coxnet", "--clinical", "age", "--fusion", "early"], "--fusion"),
        (["--model", "deepsurv", "--clinical", "age", "--fusion", "joint"], "linear Cox model"),
        (["--model", "coxnet", "--fusion", "joint"], "no --clinical"),
        (["--model", "coxnet", "--l1-ratio", "0"], "--l1-ratio"),
    ],
)
def test_fit_command_rejects_bad_input(cohort, capsys, args, message) -> None:
    assert _fit(cohort, *args, "--out", str(cohort / "bad")) == 1
    assert message in capsys.readouterr().err
    assert not (cohort / "bad").exists()


def test_cnn_baseline_learns_from_pixels_and_round_trips(cohort) -> None:
    table = pd.read_csv(cohort / "cohort" / "clinical.csv", dtype={"patient_id": str})
    data = SurvivalData(table["patient_id"], table["time"], table["event"])
    data = load_aligned_images(data, cohort / "aligned")
    assert len(data) == N - 1 and data.images.shape == (N - 1, 3, 8, 8)  # the no_face patient is left out
    model = CoxCNN(width=4, blocks=(1,), max_epochs=25, patience=25, batch=32, lr=1e-2, seed=0).fit(
        data.images, data.y
    )
    assert harrell_c(data.time, data.event, model.predict(data.images)) > 0.65
    restored = CoxCNN.restore(*model.export())
    np.testing.assert_allclose(
        restored.predict(data.images), model.predict(data.images), rtol=1e-5, atol=1e-6
    )


def test_fit_command_cnn(cohort) -> None:
    assert (
        _fit(cohort, "--model", "cnn", "--aligned", str(cohort / "aligned"), "--out", str(cohort / "cnn"))
        == 0
    )
    assert load_bundle(cohort / "cnn").kind == "cnn"


def test_fit_command_on_style_codes(cohort, capsys) -> None:
    import torch

    from stylesurv.gan.checkpoint import save_networks
    from stylesurv.gan.networks import Generator
    from stylesurv.gan.stylespace import style_dim

    torch.manual_seed(0)
    generator = Generator(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
        mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 64, "channel_max": 8},
    )  # fmt: skip
    save_networks(cohort / "G.safetensors", G_ema=generator)
    latents = ["--latents", str(cohort / "latents.npz"), "--space", "styles"]
    # W codes only: the styles must come from the generator that made the codes.
    assert _fit(cohort, *latents, "--out", str(cohort / "none")) == 1
    assert "no style codes" in capsys.readouterr().err
    out = cohort / "styles"
    assert _fit(cohort, *latents, "--generator", str(cohort / "G.safetensors"), "--out", str(out)) == 0
    bundle = load_bundle(out)
    assert bundle.spec.space == "styles" and bundle.latent_direction().shape == (style_dim(generator),)
    # The styles are an affine image of the codes, so the signal on w[:, 0] is still found.
    assert json.loads((out / "cv_results.json").read_text())["oof_harrell_c"] > 0.65
