"""CSV outputs neutralise cells a spreadsheet would run as formulas (OWASP CSV injection)."""

from __future__ import annotations

import pandas as pd
import pytest

from stylesurv.core.csvcells import safe_cell, safe_frame


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")'])
def test_formula_like_text_is_prefixed(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["P001", "photo.jpg", "a=b", 3, -0.5, None, float("nan")])
def test_other_cells_are_left_as_they_are(value):
    assert safe_cell(value) is value


def test_a_frame_keeps_its_numbers_and_neutralises_its_text(tmp_path):
    frame = pd.DataFrame({"photo": ["=cmd|' /C calc'!A0.jpg", "ok.jpg"], "risk": [-0.25, 0.5]})
    path = tmp_path / "predictions.csv"
    safe_frame(frame).to_csv(path, index=False)
    back = pd.read_csv(path)
    assert back["photo"].tolist() == ["'=cmd|' /C calc'!A0.jpg", "ok.jpg"]
    assert back["risk"].tolist() == [-0.25, 0.5]
    assert frame["photo"][0].startswith("=")  # the caller's frame is not changed
