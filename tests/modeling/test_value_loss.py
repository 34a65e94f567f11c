"""`GatoConfig.value_loss="range"`: a value target's softmax over its modality's ids only, against
a slow reference from the formula; text targets keep the whole vocabulary."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import make_config
from references import range_loss_reference

from gato.modeling.model import GatoModel
from gato.tokens.batch import collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import (
    CONTINUOUS_OFFSET,
    DISCRETE_OFFSET,
    NUM_CONTINUOUS_BINS,
)


def _mixed_batch():
    """A control episode (continuous observations and actions), a discrete one, and text."""
    tokenizer = GatoTokenizer()
    g = torch.Generator().manual_seed(0)
    continuous = tokenizer.encode_episode(
        {"continuous_observations": torch.randn(4, 3, generator=g).numpy()},
        {"continuous_actions": torch.rand(4, 2, generator=g).numpy() * 2 - 1},
    )
    discrete = tokenizer.encode_episode(
        {"continuous_observations": torch.randn(4, 2, generator=g).numpy()},
        {"discrete_actions": torch.randint(0, 6, (4,), generator=g).numpy()},
    )
    text = tokenizer.encode_text_sequence("a red square above a blue circle")
    return collate([continuous, discrete, text])


HEADS = [dict(), dict(value_embedding="table+fourier", value_head="embedding")]


@pytest.mark.parametrize("head", HEADS, ids=["table", "embedding"])
@pytest.mark.parametrize("value_loss", ["range", "vocabulary"])
def test_loss_and_gradient_match_the_reference(value_loss, head):
    torch.manual_seed(0)
    model = GatoModel(make_config(value_loss=value_loss, **head)).train()
    batch = _mixed_batch().as_dict()
    out = model(**batch)
    labels = batch["input_ids"][:, 1:]
    targets = batch["loss_mask"][:, 1:].bool() & batch["attention_mask"][:, 1:].bool()
    hidden = out.last_hidden_state[:, :-1][targets]
    weight = model.lm_head.weight
    if head:  # the continuous bins' rows: each bin's input embedding, from the formula's module
        ids = torch.arange(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)
        bins = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)
        rows = weight[bins] + model.embedding.values(ids[None])[0]
        weight = torch.cat([weight[: bins.start], rows, weight[bins.stop :]])
    logits = hidden @ weight.T
    if value_loss == "range":
        per_target = range_loss_reference(logits, labels[targets])
    else:
        per_target = F.cross_entropy(logits.double(), labels[targets], reduction="none")
    kinds = labels[targets]
    is_value = kinds >= DISCRETE_OFFSET
    assert bool(is_value.any()) and bool((~is_value).any())  # values and text both scored
    reference = per_target.sum() / targets.sum()
    torch.testing.assert_close(out.loss.double(), reference, rtol=1e-5, atol=1e-5)
    sums = torch.zeros(targets.shape[0], dtype=torch.float64)
    sums.index_add_(0, targets.nonzero()[:, 0], per_target.detach())
    torch.testing.assert_close(out.sequence_loss_sums.double(), sums, rtol=1e-5, atol=1e-5)

    (grad,) = torch.autograd.grad(out.loss, model.lm_head.weight, retain_graph=True)
    (expected,) = torch.autograd.grad(reference.float(), model.lm_head.weight)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


def test_range_loss_leaves_rows_outside_a_value_target_range_untouched():
    torch.manual_seed(0)
    model = GatoModel(make_config(value_loss="range")).train()
    batch = _mixed_batch()
    keep = slice(0, 1)  # the continuous episode alone: every target is a continuous bin
    out = model(**{k: v[keep] if v.shape[0] == 3 else v for k, v in batch.as_dict().items()})
    out.loss.backward()
    grad = model.lm_head.weight.grad
    value_rows = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)
    outside = torch.ones(grad.shape[0], dtype=torch.bool)
    outside[value_rows] = False
    embedded = torch.zeros_like(outside)
    embedded[batch.input_ids[keep].flatten()] = True  # rows the input lookup reads
    assert grad[value_rows].abs().sum() > 0
    assert grad[outside & ~embedded].abs().max() == 0


def test_unknown_value_loss_is_named():
    with pytest.raises(ValueError, match="value_loss must be one of"):
        make_config(value_loss="bins")
