"""A model whose text model has fewer pieces than the text range (`GatoConfig.text_vocab_size`).

The head skips the text ids no piece has. Reference: the same weights with every id in the head
(`text_vocab_size` = the whole range), their logits at the skipped ids set to -inf, so those ids
have probability 0; loss, gradients, logits and cached decoding must all equal it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_config
from references import range_loss_reference, slow_reference_loss

from gato.data.corpora.text_model_build import train_text_model
from gato.modeling.model import GatoModel
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import BOS_ID, EOS_ID, NO_LOCAL_POSITION, TEXT_VOCAB_SIZE

PIECES = 300


def pair(value_loss: str = "vocabulary", **overrides) -> tuple[GatoModel, GatoModel]:
    """(a model of PIECES text pieces, the same weights with the whole text range)."""
    shape = {"max_position_embeddings": 256, "value_loss": value_loss, **overrides}
    torch.manual_seed(0)
    small = GatoModel(make_config(text_vocab_size=PIECES, **shape)).eval()
    whole = GatoModel(make_config(**shape)).eval()
    whole.load_state_dict(small.state_dict())
    return small, whole


def sequences(seed: int = 0, pieces: int = PIECES) -> list[TokenSequence]:
    rng = np.random.default_rng(seed)
    ids = np.concatenate([[BOS_ID], rng.integers(0, pieces, 24), [EOS_ID]]).astype(np.int64)
    text = TokenSequence(
        ids=ids,
        local_positions=np.full(len(ids), NO_LOCAL_POSITION, dtype=np.int64),
        loss_mask=np.arange(len(ids)) > 0,
        patches=np.zeros((0, 4, 16, 16), np.uint8),
    )
    control = GatoTokenizer().encode_episode(
        {"continuous": rng.normal(size=(4, 5)), "discrete": rng.integers(0, 9, size=(4, 2))},
        {"continuous": rng.uniform(-1, 1, size=(4, 2))},
    )
    return [text, control]


def masked(logits: torch.Tensor) -> torch.Tensor:
    """The whole model's logits with the skipped text ids at -inf."""
    out = logits.clone()
    out[..., PIECES:TEXT_VOCAB_SIZE] = float("-inf")
    return out


@pytest.mark.parametrize("value_loss", ["vocabulary", "range"])
def test_loss_and_gradients_match_the_whole_head_with_skipped_ids_at_zero_probability(
    value_loss,
):
    small, whole = pair(value_loss)
    batch = collate(sequences())
    out = small(**batch.as_dict())
    logits = masked(whole(**batch.as_dict(), return_logits=True).logits)  # (B, L, V)
    if value_loss == "vocabulary":
        reference = slow_reference_loss(logits, batch)
    else:
        targets = batch.loss_mask[:, 1:] & batch.attention_mask[:, 1:].bool()
        labels = batch.input_ids[:, 1:][targets]
        reference = range_loss_reference(logits[:, :-1][targets], labels).mean()
    torch.testing.assert_close(out.loss.double(), reference, atol=1e-5, rtol=1e-5)
    out.loss.backward()
    reference.float().backward()
    table = small.embedding.tokens.weight.grad
    assert torch.count_nonzero(table[PIECES:TEXT_VOCAB_SIZE]) == 0, "skipped rows got a gradient"
    torch.testing.assert_close(table, whole.embedding.tokens.weight.grad, atol=1e-5, rtol=1e-4)
    for a, b in zip(small.layers.parameters(), whole.layers.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4)


def test_logits_are_the_whole_heads_with_skipped_ids_at_minus_infinity():
    small, whole = pair()
    batch = collate(sequences()).as_dict()
    logits = small(**batch, return_logits=True).logits
    expected = masked(whole(**batch, return_logits=True).logits)
    assert logits.shape[-1] == small.config.vocab_size
    assert torch.isneginf(logits[..., PIECES:TEXT_VOCAB_SIZE]).all()
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
    no_loss = {k: v for k, v in batch.items() if k != "loss_mask"}
    torch.testing.assert_close(small(**no_loss).logits[:, 0], logits[:, -1])


def test_cached_decoding_matches_the_full_forward():
    small, _ = pair()
    sequence = TokenSequence.concatenate(sequences(1))
    full = small(**collate([sequence]).as_dict(), return_logits=True).logits
    cache, steps = None, []
    cuts = [0, 5, 11, 12, len(sequence) - 1, len(sequence)]
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        part = collate([sequence.slice(lo, hi)]).as_dict()
        mask = torch.ones(1, hi, dtype=torch.long)
        out = small(
            input_ids=part["input_ids"],
            local_positions=part["local_positions"],
            attention_mask=mask,
            past_key_values=cache,
            use_cache=True,
            return_logits=True,
        )
        cache = out.past_key_values
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_save_and_load_keep_the_text_vocabulary(tmp_path):
    small, _ = pair()
    batch = collate(sequences()).as_dict()
    expected = small(**batch, return_logits=True).logits
    small.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.text_vocab_size == PIECES
    torch.testing.assert_close(loaded(**batch, return_logits=True).logits, expected, rtol=0, atol=0)


def test_a_checkpoint_saved_before_the_field_loads_with_the_whole_text_range(tmp_path):
    _, whole = pair()
    whole.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["text_vocab_size"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.text_vocab_size == TEXT_VOCAB_SIZE
    batch = collate(sequences(pieces=TEXT_VOCAB_SIZE)).as_dict()
    expected = whole(**batch, return_logits=True).logits
    torch.testing.assert_close(loaded(**batch, return_logits=True).logits, expected, rtol=0, atol=0)


def test_text_beyond_the_models_pieces_is_refused_by_name():
    small, _ = pair()
    batch = collate(sequences(pieces=PIECES + 50)).as_dict()
    with pytest.raises(ValueError, match=r"beyond the model's 300 text pieces.*text_vocab_size"):
        small(**batch)
    labels = batch["input_ids"].clone()
    batch = collate(sequences()).as_dict()
    with pytest.raises(ValueError, match="labels holds text id"):
        small(**batch, labels=labels)


@pytest.mark.parametrize("bad", [0, TEXT_VOCAB_SIZE + 1, 1.5, True])
def test_config_refuses_a_text_vocabulary_outside_the_range(bad):
    with pytest.raises(ValueError, match=r"text_vocab_size must be an integer in \[1, 32000\]"):
        make_config(text_vocab_size=bad)


@pytest.mark.parametrize("size", [100, TEXT_VOCAB_SIZE + 1])
def test_text_model_build_refuses_sizes_outside_the_text_range(tmp_path, size):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a few words of text\n")
    with pytest.raises(ValueError, match="vocab_size must lie in"):
        train_text_model(corpus, tmp_path / "m", vocab_size=size)
