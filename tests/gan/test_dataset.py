"""Training images: an aligned folder gives its qc.csv-usable patients (core.aligned), a plain folder all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylesurv.core.errors import InputError
from stylesurv.gan.dataset import ImageDataset, list_images


def _image(path: Path, side: int = 8) -> None:
    Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(path)


def test_an_aligned_folder_gives_the_usable_patients_only(tmp_path) -> None:
    rows = [("P0", "ok", 1), ("P1", "ok", 0), ("P2", "multiple_faces", 1), ("P3", "extreme_pose", 0)]
    for pid, _, _ in rows:
        _image(tmp_path / f"{pid}.png")
    (tmp_path / "qc.csv").write_text(
        "patient_id,status,reason,usable\n" + "".join(f"{p},{s},,{u}\n" for p, s, u in rows)
    )
    # P1 passed QC but `align --usable` left it out; P2 has several faces and is usable: qc.csv's usable
    # column decides, as for embedding and the CNN baseline (it used to be status == ok).
    assert list_images(tmp_path) == [tmp_path / "P0.png", tmp_path / "P2.png"]
    assert len(ImageDataset(tmp_path)) == 2


def test_aligned_folder_errors_name_qc_csv_and_the_line(tmp_path) -> None:
    _image(tmp_path / "P0.png")
    (tmp_path / "qc.csv").write_text("patient_id,status,usable\nP0,ok,1\nP 1,ok,1\n")
    with pytest.raises(InputError, match=r"qc\.csv line 3: patient_id 'P 1' is not a safe file name"):
        list_images(tmp_path)
    (tmp_path / "qc.csv").write_text("patient_id,status,usable\nP0,ok,1\nP9,ok,1\n")
    with pytest.raises(InputError, match=r"qc\.csv line 3: P9 is usable but P9\.png is missing"):
        list_images(tmp_path)
    (tmp_path / "qc.csv").write_text("patient_id,status,usable\nP0,ok,0\n")
    with pytest.raises(InputError, match="holds no training images"):
        list_images(tmp_path)


def test_a_plain_folder_gives_every_image_and_a_world_its_photos(tmp_path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("b.jpg", "a.png", "c 1.png"):  # no qc.csv: any name, any image suffix
        _image(plain / name)
    (plain / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(plain)] == ["a.png", "b.jpg", "c 1.png"]
    world = tmp_path / "world"
    (world / "photos").mkdir(parents=True)
    _image(world / "photos" / "x.png")
    assert list_images(world) == [world / "photos" / "x.png"]
