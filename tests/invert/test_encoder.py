"""The encoder: it learns the generator's codes, is deterministic, and round-trips through its files."""

import pytest
import torch

from stylesurv.core.errors import CheckpointError
from stylesurv.gan.networks import Generator
from stylesurv.invert.encoder import (
    EncoderTrainConfig,
    check_encoder_matches,
    load_encoder,
    new_encoder,
    save_encoder,
    train_encoder,
)
from tests.invert.tiny import G_KWARGS, sample_images, tiny_generator

CONFIG = EncoderTrainConfig(steps=40, batch=8, lr=2e-3, channel_base=256, channel_max=32)


@pytest.fixture(scope="module")
def trained():
    G = tiny_generator()
    return G, train_encoder(G, CONFIG)


def test_training_reduces_code_error_on_held_out_samples(trained) -> None:
    """Images never seen in training (other z) get codes closer to their true ones than at the start."""
    G, encoder = trained
    ws_true, images = sample_images(G, 16, seed=99)
    untrained = new_encoder(G, seed=0, channel_base=256, channel_max=32)
    with torch.no_grad():
        err_before = (untrained(images)[1] - ws_true).square().mean()
        err_after = (encoder(images)[1] - ws_true).square().mean()
    assert err_after < 0.85 * err_before  # measured 0.37 vs 0.51 after 40 steps


def test_training_is_deterministic() -> None:
    G = tiny_generator()
    short = EncoderTrainConfig(steps=4, batch=4, channel_base=256, channel_max=32)
    first, again = train_encoder(G, short), train_encoder(G, short)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_save_load_round_trip(trained, tmp_path) -> None:
    G, encoder = trained
    save_encoder(tmp_path / "enc", encoder, {"generator_sha256": "abc"})
    loaded = load_encoder(tmp_path / "enc")
    _, images = sample_images(G, 2, seed=5)
    with torch.no_grad():
        for a, b in zip(encoder(images), loaded(images), strict=True):
            assert torch.equal(a, b)
    assert (tmp_path / "enc" / "encoder.json").is_file()


def test_encoder_predicts_offsets_from_w_avg_and_bad_inputs_are_refused(tmp_path) -> None:
    G = tiny_generator()
    encoder = new_encoder(G, seed=0, channel_base=256, channel_max=32)
    with torch.no_grad():
        for head in (encoder.head_w, encoder.head_wplus):
            head.weight.zero_()
    w, ws = encoder(torch.rand(2, 3, 16, 16))
    assert torch.equal(w, G.mapping.w_avg.expand(2, -1))  # zero heads: exactly w_avg on every layer
    assert torch.equal(ws, G.mapping.w_avg.expand(2, G.num_ws, -1))
    bigger = Generator(**{**G_KWARGS, "img_resolution": 32})
    with pytest.raises(CheckpointError, match="resolution"):
        check_encoder_matches(encoder, bigger, "--encoder")
    with pytest.raises(CheckpointError, match="no encoder weights"):
        load_encoder(tmp_path)
    (tmp_path / "encoder.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a stylesurv encoder"):
        load_encoder(tmp_path)


def test_warm_start_continues_from_the_init_encoder(trained) -> None:
    """A few gentle warm-started steps beat the same steps from scratch; the init is untouched and re-centred.

    (With the from-scratch learning rate the first steps undo part of the init: 0.43 vs 0.46.)"""
    G, encoder = trained
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    short = EncoderTrainConfig(steps=4, batch=8, lr=2e-3, channel_base=256, channel_max=32, seed=3)
    gentle = EncoderTrainConfig(steps=4, batch=8, lr=2e-4, channel_base=256, channel_max=32, seed=3)
    warm, cold = train_encoder(G, gentle, init=encoder), train_encoder(G, short)
    ws_true, images = sample_images(G, 16, seed=99)
    with torch.no_grad():
        err_warm = (warm(images)[1] - ws_true).square().mean()
        err_cold = (cold(images)[1] - ws_true).square().mean()
    assert err_warm < 0.85 * err_cold  # from scratch: 0.46
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, before[name]), name
    other = tiny_generator(seed=7)  # same shape, another w_avg: the offsets are re-centred on it
    moved = train_encoder(other, gentle, init=encoder)
    assert torch.equal(moved.w_avg, other.mapping.w_avg)
    with pytest.raises(CheckpointError, match="--init"):
        train_encoder(Generator(**{**G_KWARGS, "img_resolution": 32}), short, init=encoder)
