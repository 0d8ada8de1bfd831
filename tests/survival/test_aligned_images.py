"""The CNN baseline's photos come through the aligned-folder reader (core.aligned), with the one id rule
(core.ids.patient_id_problem) that embedding and GAN training apply too."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylesurv.core.errors import InputError
from stylesurv.core.ids import patient_id_problem
from stylesurv.gan.dataset import list_images
from stylesurv.invert.embed import usable_patients
from stylesurv.survival.cnn import load_aligned_images
from stylesurv.survival.data import SurvivalData

IDS = [f"a{i:02d}" for i in range(14)]  # the survival data need >= 10 patients


def _data(ids: list[str]) -> SurvivalData:
    n = len(ids)
    return SurvivalData(np.array(ids), np.arange(1.0, n + 1) * 100, np.arange(n) % 2 == 0)


def _photos(folder, ids: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for i, pid in enumerate(ids):
        Image.fromarray(np.full((4, 4, 3), 10 * i, np.uint8)).save(folder / f"{pid}.png")


def test_usable_column_decides_and_missing_photos_are_left_out(tmp_path) -> None:
    _photos(tmp_path, IDS[:-1])  # the last patient has no photo
    rows = {pid: "ok,1" for pid in IDS[:-1]} | {"a01": "ok,0", "a02": "multiple_faces,1"}
    (tmp_path / "qc.csv").write_text(
        "patient_id,status,usable\n" + "".join(f"{pid},{row}\n" for pid, row in rows.items())
    )
    data = load_aligned_images(_data(IDS), tmp_path)
    assert data.patient_id.tolist() == [IDS[0], *IDS[2:-1]]  # a01 passed QC but is not usable
    assert data.images.shape == (len(IDS) - 2, 3, 4, 4)
    np.testing.assert_allclose(data.images[1], 20 / 127.5 - 1)  # a02's photo


def test_a_plain_folder_without_qc_csv_gives_every_photo(tmp_path) -> None:
    _photos(tmp_path, IDS[:-1])
    assert load_aligned_images(_data(IDS), tmp_path).patient_id.tolist() == IDS[:-1]
    with pytest.raises(InputError, match="does not exist"):
        load_aligned_images(_data(IDS), tmp_path / "nowhere")


@pytest.mark.parametrize("bad", ["a b", "-x", ".x", "a/b"])
def test_embed_gan_training_and_the_cnn_refuse_the_same_ids_with_the_same_words(tmp_path, bad) -> None:
    problem = patient_id_problem(bad)
    assert problem is not None
    folder = tmp_path / "aligned"
    _photos(folder, ["ok1"])
    (folder / "qc.csv").write_text(f"patient_id,status,usable\nok1,ok,1\n{bad},ok,1\n")
    for read in (usable_patients, list_images):
        with pytest.raises(InputError) as raised:
            read(folder)
        assert problem in str(raised.value) and "qc.csv line 3" in str(raised.value)
    (folder / "qc.csv").write_text("patient_id,status,usable\nok1,ok,1\n")
    with pytest.raises(InputError) as raised:
        load_aligned_images(_data(["ok1", bad]), folder)
    assert str(raised.value) == problem
