"""The SentencePiece text model and the corpus it is trained on.

The model's contract is exactness: whatever string goes in comes back, and encodings of
pieces of a text concatenate to an encoding of the text. These tests try the strings that
usually break that (whitespace, control characters, characters the model never saw, the
"▁" that SentencePiece uses internally for a space) and a seeded random fuzz.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from gato.data.corpora import text_cleaning, text_corpus, text_readers
from gato.data.corpora.text_corpus import split_corpus
from gato.data.corpora.text_model_build import train_text_model
from gato.files import ASSETS_DIR
from gato.tokens.text_model import (
    BUILD_COMMAND,
    TEXT_MODEL_ENV,
    TEXT_MODEL_PIECES,
    default_text_model_path,
    load_text_model,
)
from gato.vocab import TEXT_VOCAB_SIZE

HARD_STRINGS = [
    "",
    " ",
    "   ",
    "a",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "trailing spaces   ",
    "repeated   inner    spaces",
    "\t",
    "tab\tseparated\tvalues\t",
    "\n",
    "\n\n\n",
    "line one\nline two\n",
    "\r\n windows line\r\n",
    " \t \n mixed \n\t ",
    "emoji 😀 👍🏽 👨‍👩‍👧 🇫🇷",
    "CJK 漢字 かな カナ 한국어",
    "e\u0301 combining acute, a\u0308\u0323 stacked, Z\u0351\u0354\u0300 zalgo",
    "control \x00 \x01 \x07 \x1b[0m \x7f \x85 \u200b \u200d \u2028 \u2029 \ufeff",
    "\u00a0 no-break, \u3000 ideographic space, \u2003 em space",
    "\u2581",
    " \u2581 ",
    "\u2581\u2581 literal lower block \u2581x",
    "\ufdd0 \ufdd1 \ufdd0\ufdd1 \ufdd0\ufdd0\ufdd1 \ufdd1\ufdd0",
    "ﬁ ligature, ① circled, Ⅻ roman, ｆｕｌｌ width, ½",
    "RTL: שלום עולם, مرحبا بالعالم",
    "astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𓀀 \U0001f9ec \U000e0001 \U0010fffd \U0010ffff",
    "nonchars \ufffe \uffff \ufffd",
    "<unk> <s> </s> <pad> <0x41> ⁇",
    "def f(x):\n    return x ** 2  # indented code\n",
    "Numbers 1234567890 3.14159 -42 1e-9 0x1F",
]


SHIPPED = {"gato_text_8k": TEXT_MODEL_PIECES, "gato_text_32k": TEXT_VOCAB_SIZE}
"""The models in `tokenizers/` and their piece counts; both keep every promise below."""


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def model(request):
    processor = load_text_model(ASSETS_DIR / "tokenizers" / f"{request.param}.model")
    processor.expected_pieces = SHIPPED[request.param]
    return processor


def test_shipped_models_have_their_pieces(model) -> None:
    pieces = model.expected_pieces
    assert model.get_piece_size() == pieces <= TEXT_VOCAB_SIZE
    assert model.unk_id() == 0 and model.id_to_piece(0) == "<unk>"
    assert (model.bos_id(), model.eos_id(), model.pad_id()) == (-1, -1, -1)
    assert [model.id_to_piece(i) for i in (1, 256)] == ["<0x00>", "<0xFF>"]
    assert sum(model.is_byte(i) for i in range(pieces)) == 256
    assert not any(model.is_control(i) for i in range(pieces))


def test_default_path_is_the_repository_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEXT_MODEL_ENV, raising=False)
    path = default_text_model_path()
    assert path.name == "gato_text_8k.model" and path.parent.name == "tokenizers"
    assert load_text_model(path).get_piece_size() == TEXT_MODEL_PIECES
    assert path.is_file()
    monkeypatch.setenv(TEXT_MODEL_ENV, "/somewhere/else.model")
    assert default_text_model_path() == Path("/somewhere/else.model")


def test_missing_model_names_path_and_command(tmp_path: Path) -> None:
    missing = tmp_path / "absent.model"
    with pytest.raises(FileNotFoundError) as info:
        load_text_model(missing)
    assert str(missing) in str(info.value) and BUILD_COMMAND in str(info.value)


@pytest.mark.parametrize("text", HARD_STRINGS, ids=range(len(HARD_STRINGS)))
def test_round_trip_hard_strings(model, text: str) -> None:
    ids = model.encode(text)
    assert model.decode(ids) == text
    assert 0 not in ids, "unknown characters must fall back to bytes, never <unk>"
    assert all(0 <= i < model.expected_pieces for i in ids)


def test_newlines_and_tabs_are_byte_pieces(model) -> None:
    assert model.encode("\n", out_type=str) == ["<0x0A>"]
    assert model.encode("\t", out_type=str) == ["<0x09>"]
    assert model.encode("\u2581") != model.encode(" ")


def _random_string(rng: random.Random) -> str:
    """A string mixing ordinary text with code points from every plane (no surrogates)."""
    pools = [
        lambda: rng.choice("     \t\n\r"),
        lambda: chr(rng.randrange(0x00, 0x80)),
        lambda: chr(rng.randrange(0x80, 0x800)),
        lambda: chr(rng.randrange(0x300, 0x370)),  # combining marks
        lambda: chr(rng.randrange(0x4E00, 0xA000)),  # CJK
        lambda: chr(rng.randrange(0x1F300, 0x1FAFF)),  # emoji
        lambda: rng.choice(["\u2581", "\ufdd0", "\ufdd1", "\ufffe", "\uffff", "\u200d"]),
        lambda: rng.choice(["the", " of", " question", "ing", " government", "."]),
        lambda: chr(rng.choice([rng.randrange(0xE000, 0x110000), rng.randrange(0, 0xD800)])),
    ]
    return "".join(rng.choice(pools)() for _ in range(rng.randrange(0, 40)))


def test_round_trip_random_unicode(model) -> None:
    rng = random.Random(20240611)
    texts = [_random_string(rng) for _ in range(3000)]
    encoded = model.encode(texts)
    for text, ids in zip(texts, encoded, strict=True):
        assert model.decode(ids) == text
        assert 0 not in ids
    # Encodings concatenate: the tokenizer encodes a timestep's text piece by piece.
    for left, right, left_ids, right_ids in zip(
        texts[::2], texts[1::2], encoded[::2], encoded[1::2], strict=True
    ):
        assert model.decode(left_ids + right_ids) == left + right


@pytest.mark.parametrize("word", ["the", "of", "and", "question", "government", "people"])
def test_common_words_are_single_pieces(model, word: str) -> None:
    assert model.encode(" " + word, out_type=str) == ["\u2581" + word]
    # At the very start of a text there is no space before the word (no dummy prefix).
    assert len(model.encode(word)) <= (3 if model.expected_pieces == TEXT_VOCAB_SIZE else 4)


def test_english_sentence_compresses(model) -> None:
    text = "The committee will answer every question about the government's new policy."
    pieces = model.encode(text, out_type=str)
    assert len(pieces) <= (14 if model.expected_pieces == TEXT_VOCAB_SIZE else 16), pieces
    assert len(text.encode("utf-8")) / len(pieces) > 4.5


def test_split_corpus_is_deterministic_and_disjoint() -> None:
    paragraphs = [f"paragraph number {i} about {i % 7}" for i in range(1000)]
    paragraphs += paragraphs[:50]  # duplicates must land on one side
    first = split_corpus(paragraphs, validation_fraction=0.05, seed=0)
    again = split_corpus(list(paragraphs), validation_fraction=0.05, seed=0)
    assert first == again
    assert not set(first.train) & set(first.validation)
    assert len(first.train) + len(first.validation) == len(paragraphs)
    assert len(set(first.validation)) == 50
    assert split_corpus(paragraphs, 0.05, seed=1).validation != first.validation
    held_out = set(first.validation)
    assert [p for p in paragraphs if p in held_out] == first.validation  # input order kept
    # Membership depends on the text, not on position: shuffling the input keeps it.
    shuffled = paragraphs[:]
    random.Random(3).shuffle(shuffled)
    assert set(split_corpus(shuffled, 0.05, 0).validation) == set(first.validation)
    assert split_corpus(["a", "b"], 0.01).validation in (["a"], ["b"])
    assert split_corpus(paragraphs, 0.0).validation == []
    with pytest.raises(ValueError):
        split_corpus(paragraphs, 1.0)


def test_cleaners_keep_prose_and_drop_markup() -> None:
    rst = (
        "Title\n=====\n\nSee :func:`~os.path.join` and ``len`` for *details* here.\n\n"
        "Example::\n\n   >>> code()\n\n.. note::\n\n   A note body is prose too.\n\n"
        ".. index:: hidden\n\n   never shown\n"
    )
    assert list(text_cleaning.clean_paragraphs(text_readers.rst_paragraphs(rst))) == [
        "See join and len for details here.",
        "A note body is prose too.",
    ]
    html = (
        "<html><head><title>t</title></head><body><div class='toc'>Table of contents here"
        "</div><p>A first paragraph with <code>inline</code> code.</p><pre>x = 1</pre>"
        "<p>Second one &amp; more words.</p></body></html>"
    )
    paragraphs = text_cleaning.clean_paragraphs(text_readers.html_paragraphs(html))
    assert list(paragraphs) == [
        "A first paragraph with inline code.",
        "Second one & more words.",
    ]
    entry = (
        'Lamina \\Lam"i*na\\ (l[a^]m"[i^]*n[.a]), n.; pl. L. {Lamin[ae]}\n'
        "   [L. cf. {Lamella}.]\n   1. A thin plate or scale; caf['e] noir.\n"
        "      [1913 Webster] Laminable\n"
    )
    assert text_readers.gcide_entry_text(entry) == (
        "Lamina, n.; pl. L. Laminae 1. A thin plate or scale; café noir."
    )
    long = "A sentence of some words. " * 200
    chunks = text_cleaning.chunk_paragraph(long.strip(), max_chars=500)
    assert all(len(c) <= 500 for c in chunks) and " ".join(chunks) == long.strip()


def test_atomic_write_and_missing_package_message(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "corpus.txt"
    text_corpus.write_lines_atomically(["one", "two"], out)
    assert out.read_text(encoding="utf-8") == "one\ntwo\n"
    assert [p.name for p in out.parent.iterdir()] == ["corpus.txt"]
    assert text_corpus.read_paragraphs(out) == ["one", "two"]
    fake = text_corpus.Source("fake", ("no-such-package",), tmp_path / "absent", "-", list)
    with pytest.raises(FileNotFoundError, match="no-such-package"):
        text_corpus.ensure_packages([fake], install=False)


def test_train_tiny_model(tmp_path: Path) -> None:
    rng = random.Random(0)
    words = "the of and a to in is you that it he was for on are as with his they".split()
    words += "question government people water light house garden river stone".split()
    lines = [
        " ".join(rng.choice(words) for _ in range(rng.randrange(3, 20))).capitalize() + "."
        for _ in range(3000)
    ]
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    start = time.perf_counter()
    path = train_text_model(corpus, tmp_path / "tiny", vocab_size=512)
    assert time.perf_counter() - start < 10
    assert path == tmp_path / "tiny.model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.model", "tiny.txt"]
    tiny = load_text_model(path)
    assert tiny.get_piece_size() == 512
    assert tiny.encode(" government", out_type=str) == ["\u2581government"]
    for text in HARD_STRINGS:
        ids = tiny.encode(text)
        assert tiny.decode(ids) == text and 0 not in ids
