"""ExplainResult: summary.json reads back as the result a run returned; a malformed one is refused by key."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylesurv.cohort.table import load_clinical
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.explain.config import ExplainConfig
from stylesurv.explain.result import (
    SUMMARY_FILE,
    ExplainResult,
    FaceSubspaceRefit,
    NuisanceRemoval,
    load_explain_result,
)
from stylesurv.studies.explain_stage import ExplainInputs, explain_stage
from stylesurv.survival.bundle import load_bundle
from tests.explain.toys import region_generator, region_mask

OPTIONAL = (
    "face_bound",
    "pattern",
    "truth_correlations",
    "probes",
    "nuisance_orthogonal",
    "face_subspace",
    "attribution",
    "face_subspace_refit",
    "remove_nuisance",
)


@pytest.fixture(scope="module")
def explained(
    fitted: tuple[Path, Latents], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ExplainResult]:
    """A whole explain stage on the fitted bundle: masks, truth, the face-subspace and nuisance refits."""
    root, latents = fitted
    gen = region_generator()
    aligned = tmp_path_factory.mktemp("aligned")
    (aligned / "masks").mkdir()
    for pid in latents.patient_id:
        Image.fromarray(region_mask(gen.img_resolution)).save(aligned / "masks" / f"{pid}.png")
    inputs = ExplainInputs(
        bundle=load_bundle(root / "bundle"),
        generator=gen,
        latents=latents,
        paths={"bundle": str(root / "bundle")},
        aligned=aligned,
        truth=root / "truth.csv",
        outcomes=load_clinical(root),
        remove_nuisance="truth",
    )
    options = ExplainConfig(steps=3, random_directions=2, attribution_patients=8, face_patients=4)
    out = tmp_path_factory.mktemp("explain")
    return out, explain_stage(inputs, options, out)


def test_a_whole_run_reads_back_as_the_result_it_returned(explained: tuple[Path, ExplainResult]) -> None:
    out, result = explained
    assert [k for k in OPTIONAL if getattr(result, k) is None] == ["face_bound"]  # every part but that
    assert result.face_subspace is not None and result.face_subspace.attribution is not None
    assert result.face_subspace_refit is not None and len(result.face_subspace_refit.curve) > 0
    loaded = load_explain_result(out)
    assert loaded == result
    assert ExplainResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert json.loads((out / SUMMARY_FILE).read_text()) == json.loads(json.dumps(loaded.to_json()))
    # the held-out evaluations keep studies.refit's keys, so they read back as the dicts they were
    removal = result.remove_nuisance
    assert removal is not None and {"c_index_plain", "c_index_face_removed"} <= set(removal.to_json())
    assert NuisanceRemoval.from_json(removal.to_json()) == removal
    assert FaceSubspaceRefit.from_json(result.face_subspace_refit.to_json()) == result.face_subspace_refit
    # the JSON is a copy: editing it leaves the result as it was
    doc = result.to_json()
    doc["attribution"]["health"]["face"] = doc["truth_correlations"]["lp_face"] = 7.0
    assert result == loaded and result.to_json() != doc


def test_the_table_holds_the_headline_numbers(explained: tuple[Path, ExplainResult]) -> None:
    _, result = explained
    rows = dict(result.table())
    assert rows["explained model"] == "coxnet" and rows["codes"] == "w, 240 patients"
    assert result.attribution is not None and result.remove_nuisance is not None
    assert rows["face share of the edit along d"].startswith(f"{result.attribution.health['face']:.3f}")
    plain, removed = (
        f"{s.c_index:.3f}" for s in (result.remove_nuisance.plain, result.remove_nuisance.removed)
    )
    assert rows["held-out C: plain / nuisance removed"] == f"{plain} / {removed}"
    assert "held-out C: all codes / face subspace / rest" in rows and "face subspace" in rows


def test_a_summary_from_before_the_optional_parts_reads_them_as_none(
    explained: tuple[Path, ExplainResult],
) -> None:
    _, result = explained
    doc = result.to_json()
    for key in (*OPTIONAL, "model", "adjusted_for"):
        doc.pop(key, None)
    del doc["images"]["edit_pattern"], doc["options"]["seed"]  # an option a newer version added
    older = ExplainResult.from_json(doc)
    assert all(getattr(older, key) is None for key in OPTIONAL)
    assert older.model == "" and older.adjusted_for == () and older.images.edit_pattern is None
    assert older.options.seed == ExplainConfig().seed and older.direction == result.direction


@pytest.mark.parametrize(
    ("path", "value", "named", "problem"),
    [
        (
            ("attribution", "face_with_margin"),
            {"health": 0.5},
            "attribution.face_with_margin.random_mean",
            "missing",
        ),
        (("attribution", "health", "face"), "most", "attribution.health.face", "not a number"),
        (("probes", "items"), [{"source": "truth"}], "probes.items[0].name", "missing"),
        (("remove_nuisance", "c_index_plain"), None, "remove_nuisance.c_index_plain", "not a number"),
        (("face_subspace_refit", "curve"), {"0.5": {}}, "face_subspace_refit.curve", "not a list"),
        (("direction",), [1, 2], "direction", "not a JSON object"),
        (("n_patients",), 240.5, "n_patients", "not an integer"),
    ],
)
def test_a_malformed_summary_is_refused_naming_the_key(
    explained: tuple[Path, ExplainResult], path: tuple[str, ...], value: object, named: str, problem: str
) -> None:
    _, result = explained
    doc = result.to_json()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    expected = rf"^run/summary\.json: '{re.escape(named)}' (is )?{problem}"
    with pytest.raises(InputError, match=expected) as caught:
        ExplainResult.from_json(doc, "run/summary.json")
    assert "re-run `stylesurv explain`" in str(caught.value)


def test_a_missing_or_unreadable_summary_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="summary.json: not found; run `stylesurv explain`"):
        load_explain_result(tmp_path)
    (tmp_path / SUMMARY_FILE).write_text("{not json")
    with pytest.raises(InputError, match=f"{tmp_path / SUMMARY_FILE}: not valid JSON"):
        load_explain_result(tmp_path)
    (tmp_path / SUMMARY_FILE).write_text("[1, 2]")
    with pytest.raises(InputError, match="'the summary' is not a JSON object"):
        load_explain_result(tmp_path)


def test_nan_shares_survive_the_file(explained: tuple[Path, ExplainResult], tmp_path: Path) -> None:
    """A share that is NaN (no patient's image changed) is written as JSON's NaN and read back as NaN."""
    _, result = explained
    doc = result.to_json()
    doc["attribution"]["random_sd"]["face"] = float("nan")
    again = ExplainResult.from_json(json.loads(json.dumps(doc)))
    assert again.attribution is not None and np.isnan(again.attribution.random_sd["face"])
