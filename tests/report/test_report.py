import base64
import dataclasses
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylesurv.app.cli import main
from stylesurv.core.errors import InputError
from stylesurv.explain.result import AttributionSummary, MarginShares, load_explain_result
from stylesurv.report.html import write_report
from stylesurv.report.plots import attribution_bars, km_figure, logrank_p, risk_groups
from tests.report.fake_run import (
    EVIL_REASON,
    FACE_WITH_MARGIN,
    GROUPS,
    ORTHOGONAL,
    REMOVE_NUISANCE,
    build_run,
)


class _Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


class _Rows(HTMLParser):
    """The text of every table row, one string per cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str) -> dict[str, list[str]]:
    """Every table row keyed by its first cell's text (later rows win)."""
    parser = _Rows()
    parser.feed(html)
    return {row[0]: row[1:] for row in parser.rows if row}


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


def decoded_images(html: str) -> list[np.ndarray]:
    """Every inline image of the page as an RGB array (every frame of a GIF)."""
    out = []
    for tag, attrs in elements(html):
        if tag == "img":
            payload = attrs["src"].split(",", 1)[1]
            with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
                for frame in range(getattr(img, "n_frames", 1)):
                    img.seek(frame)
                    out.append(np.asarray(img.convert("RGB")))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def html(run: Path) -> str:
    path, _ = write_report(run, run / "report.html")
    return path.read_text(encoding="utf-8")


def test_hostile_strings_show_as_text(html: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and EVIL_REASON not in html
    for tag, attrs in elements(html):
        assert tag not in {"script", "iframe", "object", "embed"}
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)


def test_report_is_self_contained(html: str) -> None:
    for tag, attrs in elements(html):
        for name in ("src", "href"):
            if name in attrs:
                assert attrs[name].startswith("data:"), (tag, attrs[name][:60])
    assert not re.search(r"https?://", html)
    assert "@import" not in html and "url(" not in html


def test_report_has_every_section(html: str, run: Path) -> None:
    for text in (
        "Cohort",
        "812 days",
        "no_face",
        "Photos and their reconstructions",
        "oof_harrell_c",
        "0.650 [0.580, 0.720]",
        "Log-rank p: median split",
        "Faces edited along the health direction",
        "Where the direction changes the face",
        "background_brightness",
    ):
        assert text in html, text
    assert "Sections not available" not in html
    # The models' CV results as fit wrote them (CVResults): fold mean ± SD, the pooled C with its CI.
    models = table_rows(html)["coxnet"]
    assert models[:2] == ["0.660 ± 0.042", "0.620"] and "0.650 [0.580, 0.720]" in models
    # photos next to reconstructions: the aligned photo of p01 is inlined
    photo = np.asarray(Image.open(run / "aligned" / "p01.png").convert("RGB"))
    assert any(img.shape == photo.shape and np.array_equal(img, photo) for img in decoded_images(html))


def test_no_photos_leaves_out_every_patient_image(run: Path, tmp_path: Path) -> None:
    path, data = write_report(run, tmp_path / "share.html", no_photos=True)
    html = path.read_text(encoding="utf-8")
    patient_images = [np.asarray(Image.open(p).convert("RGB")) for p in (run / "aligned").glob("*.png")]
    patient_images += [
        np.asarray(Image.open(p).convert("RGB")) for p in (run / "explain" / "recon").glob("*.png")
    ]
    patient_images.append(np.asarray(Image.open(run / "explain" / "edit_patients.png").convert("RGB")))
    assert len(patient_images) > 40
    shown = decoded_images(html)
    for img in shown:
        assert not any(img.shape == p.shape and np.array_equal(img, p) for p in patient_images)
    # The generated cohort-mean face is still there, and nothing lists a patient's face.
    mean_grid = np.asarray(Image.open(run / "explain" / "edit_mean.png").convert("RGB"))
    assert any(img.shape == mean_grid.shape and np.array_equal(img, mean_grid) for img in shown)
    assert "reconstruction of patient" not in html and "Rows: patients" not in html


def test_missing_sections_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 0
    html = (tmp_path / "empty" / "report.html").read_text(encoding="utf-8")
    assert "Sections not available" in html and "fit/&lt;model&gt;/cv_results.json" in html
    assert "left out" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 1


def test_km_groups_and_logrank_match_lifelines() -> None:
    from lifelines.statistics import logrank_test

    rng = np.random.default_rng(0)
    risk = rng.standard_normal(120)
    time = rng.exponential(np.exp(-risk)) * 100 + 1
    event = (rng.uniform(size=120) < 0.8).astype(int)
    groups = risk_groups(risk, 2)
    assert np.bincount(groups).tolist() == [60, 60] and np.all(
        risk[groups == 1].min() >= risk[groups == 0].max()
    )
    assert np.bincount(risk_groups(risk, 3)).tolist() == [40, 40, 40]
    # Two groups: the multivariate log-rank test equals lifelines' two-sample test.
    a, b = groups == 0, groups == 1
    reference = logrank_test(time[a], time[b], event[a], event[b]).p_value
    assert logrank_p(time, event, groups) == pytest.approx(reference)
    png, p = km_figure(time, event, risk, "toy")
    assert (
        png[:8] == b"\x89PNG\r\n\x1a\n" and p["median"] == pytest.approx(reference) and p["tertiles"] < 0.05
    )


def test_repeated_cv_risks_become_one_row_per_patient(tmp_path: Path) -> None:
    from stylesurv.report.html import _per_patient_risk

    columns = {
        "patient_id": ["a", "b", "a", "b"],
        "time": [1.0, 2.0, 1.0, 2.0],
        "event": [1, 0, 1, 0],
        "risk": [5.0, 1.0, 0.3, 0.1],
        "repeat": [0, 0, 1, 1],
    }
    frame = pd.DataFrame(columns)
    out = _per_patient_risk(frame).set_index("patient_id")
    assert out.loc["a", "risk"] == 1.0 and out.loc["b", "risk"] == 0.5


def _copy_with_summary(run: Path, dest: Path, change: object) -> Path:
    """A copy of the run folder whose explain/summary.json was passed through ``change`` (edits in place)."""
    copy = dest / "run"
    shutil.copytree(run, copy)
    path = copy / "explain" / "summary.json"
    summary = json.loads(path.read_text())
    change(summary)  # type: ignore[operator]
    path.write_text(json.dumps(summary))
    return copy


def test_attribution_shows_face_with_margin_next_to_the_strict_face(html: str, run: Path) -> None:
    summary = json.loads((run / "explain" / "summary.json").read_text())
    margin = summary["attribution"]["face_margin_px"]
    rows = table_rows(html)
    # The strict face row keeps the explain stage's own numbers; the widened face follows with the known ones.
    strict = summary["attribution"]
    assert rows["face"][:3] == [
        f"{strict['health']['face']:.3f}",
        f"{strict['random_mean']['face']:.3f} ± {strict['random_sd']['face']:.3f}",
        f"{strict['area']['face']:.3f}",
    ]
    wide = rows[f"face + {margin} px margin"]
    assert wide[:3] == ["0.913", "0.284 ± 0.042", "0.372"]  # FACE_WITH_MARGIN, rounded
    assert wide[3].startswith("Share of the change on the face mask widened")
    assert FACE_WITH_MARGIN["area"] == 0.372
    headline = f"Face + {margin} px margin: 0.913 of the change falls inside it"
    assert headline in html and "it is 0.372 of the image area" in html
    assert "The margin region: the face mask dilated by" in html  # the stage's own definition
    result = load_explain_result(run / "explain")
    assert result.attribution is not None
    labels = [bar[0] for bar in attribution_bars(result.attribution)]
    assert labels == ["background", "face", f"face + {margin} px margin", "clothing", "other"]


def test_layer_groups_and_the_nuisance_orthogonal_direction_are_tabled(html: str) -> None:
    rows = table_rows(html)
    for name, values in GROUPS.items():
        assert rows[name][1:] == [f"{v:.3f}" for v in values], name
    assert rows["coarse"][0] == "4–8 px" and rows["fine"][0] == "64 px and up"
    for label, value in (
        ("nuisance directions projected out", "3"),
        ("share of d removed", "0.094"),
        ("cosine with d", "0.952"),
        ("face share of its change", "0.861"),
        ("face share with margin", "0.947"),
    ):
        assert rows[label][0] == value, label
        assert len(rows[label][1]) > 20 and rows[label][1].endswith("."), rows[label]  # what the number is
    assert ORTHOGONAL["removed_share"] == 0.0937
    assert rows["face share of its change"][1].endswith("(d: 1.000).")  # d's strict face share beside it
    assert rows["plain codes"] == ["0.583", "-0.716"]  # REMOVE_NUISANCE, rounded
    assert rows["codes without nuisance directions"] == ["0.647", "-0.835"]
    assert REMOVE_NUISANCE["c_index_removed"] == 0.6472


def test_attribution_bars_known_values() -> None:
    regions = ("background", "face")
    attribution = AttributionSummary(
        regions=regions,
        health={"background": 0.2, "face": 0.8},
        random_mean={"background": 0.6, "face": 0.4},
        random_sd={"background": 0.1, "face": 0.05},
        area={"background": 0.7},  # a region missing from a mapping is NaN
        step_sd=1.0,
        n_random=2,
        n_patients=4,
        n_fallback_masks=0,
        face_margin_px=2,
        face_with_margin=MarginShares("the face, dilated", 0.9, 0.5, 0.02, 0.45),
    )
    bars = attribution_bars(attribution)
    assert bars[0] == ("background", 0.2, 0.6, 0.1, 0.7) and bars[2] == (
        "face + 2 px margin",
        0.9,
        0.5,
        0.02,
        0.45,
    )
    assert bars[1][:4] == ("face", 0.8, 0.4, 0.05) and np.isnan(bars[1][4])
    older = dataclasses.replace(attribution, face_margin_px=None, face_with_margin=None)
    assert [bar[0] for bar in attribution_bars(older)] == ["background", "face"]


def test_older_and_w_space_runs_leave_the_new_parts_out(run: Path, tmp_path: Path) -> None:
    def older(summary: dict) -> None:
        for key in ("face_margin_px", "face_with_margin", "groups"):
            del summary["attribution"][key]
        del summary["nuisance_orthogonal"], summary["remove_nuisance"]

    path, data = write_report(_copy_with_summary(run, tmp_path, older), tmp_path / "older.html")
    html = path.read_text(encoding="utf-8")
    rows = table_rows(html)
    assert "face" in rows and "clothing" in rows and not any(k.startswith("face + ") for k in rows)
    assert "Which layers carry the change" not in html and "without the nuisance attributes" not in html
    assert "px margin" not in html and "margin region" not in html and "Model refitted without" not in html
    assert data.explain is not None and data.explain["attribution_png"] is not None


def test_a_direction_with_nothing_left_outside_the_nuisance_span_says_so(run: Path, tmp_path: Path) -> None:
    def nothing_left(summary: dict) -> None:
        summary["nuisance_orthogonal"].update(n_directions=12, cosine_with_d=0.0, removed_share=1.0)
        del summary["nuisance_orthogonal"]["attribution"]  # no direction left to edit along

    path, _ = write_report(_copy_with_summary(run, tmp_path, nothing_left), tmp_path / "none.html")
    html = path.read_text(encoding="utf-8")
    rows = table_rows(html)
    assert rows["nuisance directions projected out"][0] == "12" and rows["share of d removed"][0] == "1.000"
    assert "face share of its change" not in rows
    assert "Nothing of d lies outside the nuisance directions" in html


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            lambda s: s["attribution"].update(face_with_margin={"health": 0.5}),
            "attribution.face_with_margin.random_mean",
        ),
        (lambda s: s["attribution"].update(groups=["not", "a", "mapping"]), "attribution.groups"),
        (lambda s: s["nuisance_orthogonal"].update(n_directions="12"), "nuisance_orthogonal.n_directions"),
        (lambda s: s["images"].pop("edit_mean"), "images.edit_mean"),
    ],
)
def test_a_malformed_summary_is_refused_naming_the_file_and_key(
    run: Path, tmp_path: Path, change: object, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _copy_with_summary(run, tmp_path, change)
    with pytest.raises(InputError, match=re.escape(f"'{key}'")) as caught:
        write_report(broken, tmp_path / "broken.html")
    assert str(broken / "explain" / "summary.json") in str(caught.value)
    assert main(["report", str(broken)]) == 1 and key in capsys.readouterr().err.replace("\n", "")


def test_new_input_strings_are_escaped(run: Path, tmp_path: Path) -> None:
    evil_group, evil_definition = "<i onclick=alert(5)>g</i>", "</p><script>alert(6)</script>"

    def hostile(summary: dict) -> None:
        groups = summary["attribution"]["groups"]
        groups[evil_group] = groups["coarse"]
        summary["attribution"]["face_with_margin"]["definition"] = evil_definition
        summary["nuisance_orthogonal"]["definition"] = evil_definition

    path, _ = write_report(_copy_with_summary(run, tmp_path, hostile), tmp_path / "hostile.html")
    html = path.read_text(encoding="utf-8")
    assert evil_group not in html and evil_definition not in html
    assert "&lt;i onclick=alert(5)&gt;g&lt;/i&gt;" in html
    assert html.count("&lt;/p&gt;&lt;script&gt;alert(6)&lt;/script&gt;") == 2
    assert table_rows(html)[evil_group][1:] == ["0.611", "0.527", "0.781", "0.846"]
    for tag, attrs in elements(html):
        assert tag not in {"script", "iframe", "object", "embed"}
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)


def test_adjusted_direction_names_its_covariates_escaped(run: Path, tmp_path: Path) -> None:
    evil = "<b>stage</b>"

    def adjusted(summary: dict) -> None:
        summary["model"], summary["adjusted_for"] = "coxnet|clinical", ["age", evil]

    html = write_report(_copy_with_summary(run, tmp_path, adjusted), tmp_path / "adj.html")[0].read_text()
    assert "Model: coxnet|clinical. Adjusted for age, &lt;b&gt;stage&lt;/b&gt;: the codes" in html
    assert evil not in html
    latent_only = write_report(run, tmp_path / "plain.html")[0].read_text()
    assert "Adjusted for" not in latent_only
