"""The invert layer reads aligned folders through core.aligned and names encoders by encoder_identity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stylesurv.core.errors import CheckpointError, InputError
from stylesurv.core.hashing import sha256_file
from stylesurv.invert.embed import load_batch, usable_patients
from stylesurv.invert.encoder import encoder_identity, new_encoder, save_encoder
from tests.invert.tiny import tiny_generator

R = 16


def _photo(path, value: int = 0) -> None:
    Image.fromarray(np.full((R, R, 3), value, np.uint8)).save(path)


def test_embedding_uses_qc_csv_usable_column_sorted(tmp_path) -> None:
    for pid in ("P2", "P1", "P3"):
        _photo(tmp_path / f"{pid}.png")
    (tmp_path / "qc.csv").write_text("patient_id,status,usable\nP2,ok,1\nP1,multiple_faces,1\nP3,ok,0\n")
    assert usable_patients(tmp_path) == ["P1", "P2"]
    (tmp_path / "qc.csv").write_text("patient_id,status,usable\nP2,ok,0\n")
    with pytest.raises(InputError, match="holds no usable aligned photos"):
        usable_patients(tmp_path)
    (tmp_path / "qc.csv").unlink()  # a plain folder of aligned photos: every <pid>.png
    assert usable_patients(tmp_path) == ["P1", "P2", "P3"]


def test_load_batch_reads_masks_through_the_mask_reader(tmp_path) -> None:
    for pid in ("A", "B", "C"):
        _photo(tmp_path / f"{pid}.png", 255)
    (tmp_path / "masks").mkdir()
    label = np.zeros((R, R), np.uint8)
    label[4:12, 4:12] = 1
    Image.fromarray(label).save(tmp_path / "masks" / "A.png")
    double = np.kron(label, np.ones((2, 2), np.uint8))  # a 2R x 2R mask is resized (nearest) to R
    Image.fromarray(double).save(tmp_path / "masks" / "B.png")
    images, faces, has_mask = load_batch(tmp_path, ["A", "B", "C"], R, use_masks=True)
    assert images.shape == (3, 3, R, R) and torch.all(images == 1)
    assert has_mask.tolist() == [True, True, False] and faces is not None
    assert torch.equal(faces[0, 0], torch.from_numpy(label == 1).float())
    assert torch.equal(faces[1, 0], faces[0, 0]) and torch.all(faces[2] == 1)  # no mask: the whole image
    assert load_batch(tmp_path, ["A"], R, use_masks=False)[1] is None
    Image.fromarray(np.full((R, R), 7, np.uint8)).save(tmp_path / "masks" / "C.png")
    with pytest.raises(InputError, match=r"C\.png: mask labels must be 0-3"):
        load_batch(tmp_path, ["C"], R, use_masks=True)
    with pytest.raises(InputError, match=r"no aligned photo D\.png"):
        load_batch(tmp_path, ["D"], R, use_masks=False)


def test_encoder_identity_is_the_hash_of_the_weights_file(tmp_path) -> None:
    folder = tmp_path / "enc"
    save_encoder(folder, new_encoder(tiny_generator(), seed=0, channel_base=256, channel_max=32), {"a": 1})
    identity = encoder_identity(folder)
    assert identity == sha256_file(folder / "encoder.safetensors")
    notes = json.loads((folder / "encoder.json").read_text())
    (folder / "encoder.json").write_text(json.dumps({**notes, "real_photos": "elsewhere"}))
    (folder / "README.txt").write_text("other files do not name the encoder")
    assert encoder_identity(folder) == identity
    with pytest.raises(CheckpointError, match=r"encoder\.safetensors: no encoder weights"):
        encoder_identity(tmp_path / "nowhere")
