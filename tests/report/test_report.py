import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylesurv.cli import main
from stylesurv.report.html import write_report
from stylesurv.report.plots import km_figure, logrank_p, risk_groups
from tests.report.fake_run import EVIL_METRIC, EVIL_REASON, build_run


class _Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


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
    assert EVIL_METRIC not in html and "&lt;b onmouseover=alert(3)&gt;" in html
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
