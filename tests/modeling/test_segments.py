"""Packed sequences that attend only within themselves: `TokenSequence.pack`, `collate(segments=
True)`, `causal_segment_mask` and the model's `segment_ids`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_config

from gato.modeling.masks import causal_padding_mask, causal_segment_mask
from gato.modeling.model import GatoModel
from gato.tokens.batch import SHARED_SEGMENT, TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer


def sequences(seed: int = 0) -> list[TokenSequence]:
    """A continuous-control episode, one with an image, a discrete one and a text: each starts
    with a token that is not a target, as every packed sequence does."""
    tokenizer = GatoTokenizer()
    rng = np.random.default_rng(seed)
    return [
        tokenizer.encode_episode(
            {"continuous": rng.normal(size=(3, 5))}, {"continuous": rng.uniform(-1, 1, (3, 2))}
        ),
        tokenizer.encode_episode(
            {
                "continuous": rng.normal(size=(2, 4)),
                "image": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
            },
            {"continuous": rng.uniform(-1, 1, (2, 3))},
        ),
        tokenizer.encode_episode(
            {"discrete": rng.integers(0, 9, (3, 2))}, {"discrete": rng.integers(0, 6, (3,))}
        ),
        tokenizer.encode_text_sequence("a small red square at the top left"),
    ]


ENCODINGS = pytest.mark.parametrize(
    "overrides",
    [{}, {"continuous_observation_group": 4, "continuous_action_group": 2}],
    ids=["values", "grouped"],
)


def summed_losses(model):
    """batch -> the model's loss summed over the batch's targets (the mean times their count)."""

    def summed(batch) -> float:
        with torch.no_grad():
            out = model(**batch.as_dict())
        return float(out.loss) * int(out.num_loss_tokens)

    return summed


def test_pack_starts_a_segment_at_each_part_and_concatenate_keeps_them():
    a, b, c, d = sequences()
    packed = TokenSequence.pack([a, b, c])
    assert packed.segment_starts.tolist() == [len(a), len(a) + len(b)]
    # A prompt joined to a packed row shifts its segments and begins none of its own.
    prompted = TokenSequence.concatenate([d, packed])
    assert prompted.segment_starts.tolist() == [len(d) + len(a), len(d) + len(a) + len(b)]
    assert TokenSequence.concatenate([a, b]).segment_starts.size == 0
    # Slices keep the starts inside them, relative to the slice; none at its first token.
    cut = packed.slice(len(a), len(packed))
    assert cut.segment_starts.tolist() == [len(b)]
    assert packed.slice(1, len(a) + 3).segment_starts.tolist() == [len(a) - 1]
    # An empty part begins nothing.
    empty = a.slice(0, 0)
    assert TokenSequence.pack([empty, a, empty, b]).segment_starts.tolist() == [len(a)]
    with pytest.raises(ValueError, match="TokenSequence.pack needs at least one"):
        TokenSequence.pack([])


def test_a_prompt_packed_first_is_the_shared_prefix_of_the_row():
    a, b, c, d = sequences()
    row = TokenSequence.pack([d, a, b], shared_first=True)
    assert row.shared_prefix == len(d)
    assert row.segment_starts.tolist() == [len(d), len(d) + len(a)]
    assert row.slice(2, len(row)).shared_prefix == len(d) - 2
    assert row.slice(len(d), len(row)).shared_prefix == 0
    assert TokenSequence.concatenate([row, c]).shared_prefix == len(d)
    with pytest.raises(ValueError, match="only the first of the parts joined may hold a prefix"):
        TokenSequence.pack([c, row])
    with pytest.raises(ValueError, match=r"shared_prefix must be in \[0, "):
        TokenSequence(ids=d.ids, local_positions=d.local_positions, loss_mask=d.loss_mask,
                      shared_prefix=len(d) + 1)  # fmt: skip
    ids = collate([row], segments=True).segment_ids[0]
    assert ids.tolist() == [SHARED_SEGMENT] * len(d) + [1] * len(a) + [2] * len(b)


@pytest.mark.parametrize("starts", [[0], [5, 3], [4, 4], [999]])
def test_bad_segment_starts_are_refused(starts):
    a = sequences()[3]
    with pytest.raises(ValueError, match="segment_starts must be ascending offsets"):
        TokenSequence(
            ids=a.ids,
            local_positions=a.local_positions,
            loss_mask=a.loss_mask,
            segment_starts=np.asarray(starts, dtype=np.int64),
        )


def test_collate_numbers_the_segments_of_each_row_and_marks_padding():
    a, b, c, d = sequences()
    packed = TokenSequence.pack([a, d])
    batch = collate([packed, c], segments=True)
    ids = batch.segment_ids
    assert ids.shape == batch.input_ids.shape
    assert ids[0].tolist() == [0] * len(a) + [1] * len(d) + [-1] * (ids.shape[1] - len(packed))
    assert ids[1, : len(c)].eq(0).all() and ids[1, len(c) :].eq(-1).all()
    assert collate([packed, c]).segment_ids is None
    assert "segment_ids" not in collate([packed]).as_dict()
    assert batch.rows(slice(1, 2)).segment_ids.tolist() == ids[1:2].tolist()


def test_the_segment_mask_is_causal_and_within_a_segment():
    segments = torch.tensor([[0, 0, 1, 1, 1, 2, -1, -1], [-2, -2, 1, 1, 2, 2, 2, -1]])
    left_padded = causal_padding_mask(torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1]] * 2), 8, 0, "cpu")
    for base in (None, left_padded):
        got = causal_segment_mask(base, segments)
        assert got.shape == (2, 1, 8, 8)
        for r in range(2):
            for i in range(8):
                for j in range(8):
                    query, key = int(segments[r, i]), int(segments[r, j])
                    allowed = j <= i and (query == key or (key == -2 and query != -1))
                    if base is not None:
                        allowed = allowed and bool(base[r, 0, i, j])
                    assert bool(got[r, 0, i, j]) == allowed, (base is None, r, i, j)


@ENCODINGS
def test_a_packed_row_scores_each_sequence_as_if_it_were_alone(overrides):
    torch.manual_seed(0)
    model = GatoModel(make_config(**overrides)).eval()
    parts = sequences(1)
    summed_loss = summed_losses(model)

    alone = sum(summed_loss(collate([p])) for p in parts)
    packed = TokenSequence.pack(parts)
    isolated = summed_loss(collate([packed, parts[0]], segments=True)) - summed_loss(
        collate([parts[0]])
    )
    error = abs(isolated - alone)
    assert error < 1e-5 * alone
    # Without the segments each sequence sees the ones before it: a different loss.
    assert abs(summed_loss(collate([packed])) - alone) > 100 * max(error, 1e-6)
    if not overrides:  # one position per token: every hidden state is the lone sequence's
        with torch.no_grad():
            hidden = model(**collate([packed], segments=True).as_dict()).last_hidden_state
            offset = 0
            for part in parts:
                lone = model(**collate([part]).as_dict()).last_hidden_state
                torch.testing.assert_close(hidden[:, offset : offset + len(part)], lone)
                offset += len(part)


@ENCODINGS
def test_every_window_after_a_shared_prompt_scores_as_if_it_followed_the_prompt_alone(overrides):
    torch.manual_seed(1)
    model = GatoModel(make_config(**overrides)).eval()
    prompt, *windows = sequences(2)[:3]
    summed_loss = summed_losses(model)

    own = summed_loss(collate([prompt]))
    expected = own + sum(
        summed_loss(collate([TokenSequence.concatenate([prompt, w])])) - own for w in windows
    )
    row = TokenSequence.pack([prompt, *windows], shared_first=True)
    got = summed_loss(collate([row], segments=True))
    error = abs(got - expected)
    assert error < 1e-5 * expected
    # Windows that see only themselves score otherwise.
    alone = summed_loss(collate([TokenSequence.pack([prompt, *windows])], segments=True))
    assert abs(alone - expected) > 100 * max(error, 1e-6)


def test_segment_ids_are_refused_with_a_cache_and_in_the_wrong_shape():
    model = GatoModel(make_config()).eval()
    batch = collate([sequences()[3]], segments=True)
    with torch.no_grad():
        out = model(input_ids=batch.input_ids[:, :4], use_cache=True)
        with pytest.raises(ValueError, match="segment_ids cannot be used with a cache"):
            model(
                input_ids=batch.input_ids[:, 4:6],
                past_key_values=out.past_key_values,
                segment_ids=batch.segment_ids[:, 4:6],
            )
        with pytest.raises(ValueError, match="segment_ids must have the shape of input_ids"):
            model(input_ids=batch.input_ids, segment_ids=batch.segment_ids[:, 1:])
