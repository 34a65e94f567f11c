"""benchmarks/captions_composition.py: word positions, and the score of an oracle and a copier."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gato.data.corpora.vision_language import HELD_OUT_PAIRS, BuildSizes, build_dataset
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import VOCAB_SIZE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import captions_composition as cc  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return GatoTokenizer()


def test_word_positions_point_at_the_words_first_token(tok):
    text = "a large red circle at the top left and a small blue square at the centre."
    ids = tok.encode_text(text).tolist()
    for word in ("red", "circle", "blue", "square"):
        index = cc.word_positions(tok, text, text.index(word))
        assert tok.decode_text([ids[index]]).strip() == word


class Oracle:
    """Logits that put each position's mass on the next input token (`shift=1`), or on the
    token itself (`shift=0`: a model that copies what it reads)."""

    def __init__(self, shift: int) -> None:
        self.shift = shift

    def __call__(self, input_ids, **_):
        target = torch.roll(input_ids, -self.shift, dims=1).clamp(max=VOCAB_SIZE - 1)
        logits = torch.nn.functional.one_hot(target, VOCAB_SIZE).float()
        return SimpleNamespace(logits=logits)


def test_an_oracle_names_every_attribute_and_a_copier_none(tmp_path, tok):
    build_dataset("captions", tmp_path / "captions", BuildSizes(train=4, validation=6, heldout=6))
    oracle = cc.attribute_accuracy(Oracle(1), tok, "heldout", 6, tmp_path / "captions")
    counts = oracle["counts"]
    assert oracle["skipped"] == 0
    assert counts["unseen"]["shape"][1] >= 6  # every held-out scene holds an unseen pair
    for kind in ("seen", "unseen"):
        for attribute in ("size", "colour", "shape", "position"):
            right, total = counts[kind][attribute]
            assert right == total and total == counts[kind]["shape"][1]
    assert oracle["relations"] and all(r == t for r, t in oracle["relations"].values())
    copier = cc.attribute_accuracy(Oracle(0), tok, "heldout", 6, tmp_path / "captions")
    assert all(c[0] == 0 for kind in copier["counts"].values() for c in kind.values())
    assert sum(t for _, t in copier["relations"].values()) == sum(
        t for _, t in oracle["relations"].values()
    )
    assert all(r == 0 for r, _ in copier["relations"].values())
    validation = cc.attribute_accuracy(Oracle(1), tok, "validation", 6, tmp_path / "captions")
    assert validation["counts"]["unseen"]["shape"][1] == 0  # no unseen pair outside heldout
    assert len(HELD_OUT_PAIRS) == 6


def test_a_relation_phrase_spans_its_words(tok):
    text = (
        "a small red circle at the top and a large blue square at the centre; "
        "the circle is above the square."
    )
    start = text.index("above")
    first, last = cc.phrase_span(tok, text, start, start + len("above"))
    ids = tok.encode_text(text).tolist()
    assert tok.decode_text(ids[first:last]).strip() == "above"
    assert tok.decode_text([ids[last]]).strip() == "the"
    start = text.index("is above")
    match = cc.RELATION.search(text)
    assert match is not None and match.group(1) == "above" and match.start(1) == start + 3
    phrase = "the square is above and right of the circle"
    assert cc.RELATION.search(phrase).group(1) == "above and right of"


def test_bad_limit_is_refused():
    with pytest.raises(SystemExit):
        cc.main(["nowhere", "--limit", "0"])
