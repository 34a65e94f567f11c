"""Attention masks, positions and RoPE (gato.modeling.masks, gato.modeling.rotary) against slow
references written from their definitions, element by element."""

from __future__ import annotations

import math

import pytest
import torch
from references import reference_mask, reference_positions

from gato.modeling.masks import (
    causal_mask,
    causal_padding_mask,
    causal_padding_mask_at,
    position_ids,
    position_ids_at,
)
from gato.modeling.rotary import RotaryTable, apply_rotary, rotary_cos_sin

RAGGED = [
    [False, False, True, True, True, False, True, True],  # left padding and a hole
    [True, True, True, True, True, True, True, True],
    [False, False, False, False, False, True, True, True],
]


@pytest.mark.parametrize("past", [0, 3, 5, 7])
def test_causal_padding_mask_and_positions_match_the_definitions(past):
    real = torch.tensor(RAGGED)
    length = real.shape[1] - past
    got = causal_padding_mask(real.long(), length, past, real.device)
    torch.testing.assert_close(got, reference_mask(RAGGED, past))
    torch.testing.assert_close(
        position_ids(real.long(), length, past), reference_positions(RAGGED, length)
    )
    # The fixed-shape forms, with the new columns given as a tensor, agree.
    columns = torch.arange(real.shape[1])
    new = past + torch.arange(length)
    torch.testing.assert_close(causal_padding_mask_at(real, new, columns), got)
    torch.testing.assert_close(position_ids_at(real, new), position_ids(real.long(), length, past))


def test_no_mask_where_sdpa_alone_is_exact():
    right_padded = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert causal_padding_mask(right_padded, 4, 0, right_padded.device) is None
    assert causal_padding_mask(None, 4, 0, torch.device("cpu")) is None
    assert causal_padding_mask(None, 1, 9, torch.device("cpu")) is None  # one token, all visible
    left_padded = torch.tensor([[0, 1, 1, 1]])
    assert causal_padding_mask(left_padded, 4, 0, left_padded.device) is not None
    dense = causal_padding_mask(None, 3, 2, torch.device("cpu"))  # (1, 1, 3, 5): plain causal
    torch.testing.assert_close(dense, reference_mask([[True] * 5], 2))
    torch.testing.assert_close(causal_mask(4, torch.device("cpu")), torch.ones(4, 4).tril().bool())
    torch.testing.assert_close(
        position_ids(None, 3, 4, batch_size=2), torch.tensor([[4, 5, 6], [4, 5, 6]])
    )


def test_rotary_matches_a_rotation_of_each_pair():
    d, theta = 8, 10_000.0
    positions = torch.tensor([[0, 3, 17]])
    x = torch.randn(1, 3, 2, 2, d)  # (B, L, 2, H, d), the block's layout
    cos, sin = rotary_cos_sin(positions, d, theta)
    assert cos.shape == (1, 3, 1, 1, d)
    got = apply_rotary(x, cos, sin)
    want = torch.empty_like(x)
    for t, p in enumerate(positions[0].tolist()):
        for i in range(d // 2):  # dimension i pairs with i + d/2, angle p theta^(-2i/d)
            angle = p * theta ** (-2 * i / d)
            a, b = x[0, t, ..., i], x[0, t, ..., i + d // 2]
            want[0, t, ..., i] = a * math.cos(angle) - b * math.sin(angle)
            want[0, t, ..., i + d // 2] = b * math.cos(angle) + a * math.sin(angle)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # The table of a decoding step holds the same angles.
    table = RotaryTable(d, theta, torch.float32, torch.device("cpu"))
    table.grow(20)
    span_cos, span_sin = table.span(3, 1)
    torch.testing.assert_close(span_cos[0], cos[0, 1])
    at_cos, at_sin = table.at(positions)
    torch.testing.assert_close(at_cos, cos)
    torch.testing.assert_close(at_sin, sin)
