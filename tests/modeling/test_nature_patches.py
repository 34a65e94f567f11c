"""The "nature" patch encoder: a whole frame a token through the Nature DQN's convolutions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_config, pong_like_steps, run_in_chunks

from gato.modeling.embedding import (
    FRAME_EPS,
    NaturePatchEmbedding,
    nature_side,
    standardised_patches,
)
from gato.modeling.model import GatoModel
from gato.tokens.batch import collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import PATCH_ID


def frame_model(seed: int = 0) -> GatoModel:
    torch.manual_seed(seed)
    config = make_config(max_position_embeddings=64, patch_size=84, patch_encoder="nature")
    return GatoModel(config).eval()


def test_standardised_patches_have_mean_zero_and_spread_one_each():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, size=(3, 4, 12, 12), dtype=np.uint8)
    got = standardised_patches(torch.from_numpy(patches)).numpy()
    x = patches.astype(np.float64) / 255.0
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    spread = x.std(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(got, (x - mean) / (spread + FRAME_EPS), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    # A blank patch stays blank; a faint ball on it (10 grey levels, 0.04 of the full scale at
    # Gato's fixed scale) is stretched to several units, as a bright one is.
    blank = torch.full((1, 4, 12, 12), 87, dtype=torch.uint8)
    assert standardised_patches(blank).abs().max() < 1e-4
    faint, bright = blank.clone(), blank.clone()
    faint[0, :, 5:7, 5:7] = 97
    bright[0, :, 5:7, 5:7] = 247
    assert 3.0 < standardised_patches(faint).max() < standardised_patches(bright).max() < 6.0


def test_standardised_frames_match_the_float64_formula_at_pong_size():
    # Whole 80x80 frames of a grey field with a few bright pixels: the spread is small beside
    # the mean, where a one-pass variance in float32 would cancel.
    rng = np.random.default_rng(1)
    frames = np.full((6, 4, 80, 80), 87, dtype=np.uint8)
    for k in range(5):
        r, c = rng.integers(0, 78, 2)
        frames[k, :, r : r + 2, c : c + 2] = 236 - 20 * k
    frames[4, 1] = 140  # one frame of the stack lit
    got = standardised_patches(torch.from_numpy(frames)).numpy()
    x = frames.astype(np.float64) / 255.0
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    want = (x - mean) / (x.std(axis=(1, 2, 3), keepdims=True) + FRAME_EPS)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert np.abs(got[5]).max() == 0.0  # the blank frame stays exactly blank
    # bf16 autocast (the Trainer's) leaves the statistics in float32.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = standardised_patches(torch.from_numpy(frames))
    assert under_autocast.dtype == torch.float32
    np.testing.assert_array_equal(under_autocast.numpy(), got)


def test_nature_side_is_the_last_feature_map_of_the_three_convolutions():
    assert [nature_side(p) for p in (84, 64, 36, 35, 16)] == [7, 4, 1, 0, 0]
    for p in (84, 64, 36):
        conv = NaturePatchEmbedding(make_config(patch_size=p, patch_encoder="nature")).conv
        assert conv(torch.zeros(1, 4, p, p)).shape[-1] == nature_side(p)


def test_nature_encoder_against_the_formula():
    """conv(8, stride 4) -> ReLU -> conv(4, stride 2) -> ReLU -> conv(3) -> ReLU -> flatten ->
    linear, on each patch standardised by its own mean and spread, in float64 by hand."""
    torch.manual_seed(0)
    encoder = NaturePatchEmbedding(make_config(patch_size=84, patch_encoder="nature"))
    rng = np.random.default_rng(1)
    patches = torch.from_numpy(rng.integers(0, 256, size=(2, 4, 84, 84), dtype=np.uint8))
    x = patches.double() / 255.0
    x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / (
        x.std(dim=(1, 2, 3), keepdim=True, unbiased=False) + 1.0 / 255.0
    )
    c1, c2, c3 = (encoder.conv[i] for i in (0, 2, 4))
    for conv, stride in ((c1, 4), (c2, 2), (c3, 1)):
        x = F.relu(F.conv2d(x, conv.weight.double(), conv.bias.double(), stride=stride))
    assert x.shape == (2, 64, 7, 7)
    expected = x.flatten(1) @ encoder.proj.weight.double().T + encoder.proj.bias.double()
    got = encoder(patches)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"patch_size": 16}, r"patch_encoder='nature' needs patch_size >= 36.*got 16"),
        ({"patch_size": 32}, r"needs patch_size >= 36.*got 32"),
    ],
)
def test_nature_encoder_refuses_small_patches(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_config(patch_encoder="nature", **overrides)


def test_a_frame_is_one_token_that_trains_decodes_with_a_cache_and_round_trips(tmp_path):
    model = frame_model()
    tokenizer = GatoTokenizer.from_config(model.config)
    seq = tokenizer.encode_jat_episode(pong_like_steps(np.random.default_rng(0), 4))
    # Each step: one frame token, the separator, the action.
    assert int((seq.ids == PATCH_ID).sum()) == 4
    assert np.diff(seq.timestep_starts).tolist() == [3, 3, 3]
    batch = collate([seq])
    model.train()
    model(**batch.as_dict()).loss.backward()
    assert model.embedding.patches.conv[0].weight.grad.abs().sum() > 0
    model.eval()
    full = model(**batch.as_dict(), return_logits=True).logits
    got = run_in_chunks(model, seq, [2, 7])
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert (loaded.config.patch_encoder, loaded.config.patch_size) == ("nature", 84)
    got = loaded(**batch.as_dict(), return_logits=True).logits
    torch.testing.assert_close(got, full, rtol=0, atol=0)
