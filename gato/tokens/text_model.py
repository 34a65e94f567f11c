"""The project's SentencePiece text model: what it promises, where it lives, how to load it.

Text ids are [0, n) of the shared vocabulary's text range [0, 32000) (see `gato.vocab`), for a
model of n pieces that reserves nothing but `<unk>` (id 0, which SentencePiece requires);
padding, separators and the like live above the text range. Two models ship, trained on the
same corpus with the same options: `gato_text_8k` (8,192 pieces), the default, and
`gato_text_32k` (32,000, Gato's size; `GATO_TEXT_MODEL=tokenizers/gato_text_32k.model`). A
model writes only its text model's pieces (`GatoConfig.text_vocab_size`), so its head is
computed over 10,304 ids with the 8k model against 34,112 with the 32k one (a training step of
the CPU demo 0.61-0.69 times as long), for text 6-17% longer in tokens (tokenizers/README.md).

Every training option (`gato.data.corpora.text_model_build.trainer_options`) serves one
promise: `decode(encode(s)) == s` for every Unicode string
without lone surrogates (those cannot be UTF-8 encoded),
and `decode(encode(a) + encode(b)) == a + b`, because the tokenizer cuts text into
timesteps and joins the ids again:

- `byte_fallback`: a character the model never learned becomes its UTF-8 bytes (ids
  1..256), never `<unk>`. Newlines and tabs take this path too: SentencePiece trains on
  lines, so it never sees them, and a byte piece costs the same one id a symbol would.
- No normalization and `remove_extra_whitespaces=False`: spaces, control characters,
  combining marks and compatibility characters pass through untouched.
- `add_dummy_prefix=False`: no invisible space is added at the start, so encodings of
  pieces of text concatenate exactly. (A text therefore starts with "The", not "▁The".)
- The normalizer writes a space as U+2581 ("▁") and the decoder writes every "▁" back as
  a space, so a literal "▁" in the input would come back as a space. One rule escapes it
  (and the escape character) on the way in, and the denormalizer undoes that on the way
  out; everything else is the identity. The escape uses U+FDD0/U+FDD1, Unicode
  noncharacters reserved for such internal use, so ordinary text never pays for it.

Training it from the text corpus is the data side's job (`gato.data.corpora.text_model_build`,
which sets the options above); from the repository root, building the corpus first when it is
missing::

    python -m gato.data.corpora.text_model_build --corpus data/cache/text/corpus.txt --out
    tokenizers/gato_text_8k --vocab_size 8192
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import sentencepiece as spm

from gato.files import ASSETS_DIR

TEXT_MODEL_NAME = "gato_text_8k"
TEXT_MODEL_PIECES = 8192
"""Pieces of the default model: ids [0, 8192) of the text range."""
TEXT_MODEL_ENV = "GATO_TEXT_MODEL"
"""Environment variable that points the project at another model file."""
BUILD_COMMAND = (
    "python -m gato.data.corpora.text_model_build --corpus data/cache/text/corpus.txt"
    " --out tokenizers/gato_text_8k --vocab_size 8192"
)


def default_text_model_path() -> Path:
    """`$GATO_TEXT_MODEL` if set, else `<repo>/tokenizers/gato_text_8k.model`.

    Read at call time, so tests and scripts can switch models by setting the variable.
    """
    override = os.environ.get(TEXT_MODEL_ENV)
    if override:
        return Path(override).expanduser()
    return ASSETS_DIR / "tokenizers" / f"{TEXT_MODEL_NAME}.model"


DEFAULT_TEXT_MODEL_PATH = default_text_model_path()
"""The model file as resolved at import time; `default_text_model_path()` re-reads the env."""

SPACE_SYMBOL = "\u2581"
"""SentencePiece's stand-in for a space inside pieces."""
ESCAPE = "\ufdd0"
ESCAPED_SPACE_SYMBOL = "\ufdd1"
NORMALIZATION_RULES: Mapping[str, str] = {
    SPACE_SYMBOL: ESCAPE + ESCAPED_SPACE_SYMBOL,
    ESCAPE: ESCAPE + ESCAPE,
}
"""Input rewrites applied before encoding: an injective escape of "▁" (see module doc)."""
DENORMALIZATION_RULES: Mapping[str, str] = {v: k for k, v in NORMALIZATION_RULES.items()}
"""Their inverse, applied to decoded text."""


def load_text_model(path: str | Path | None = None) -> spm.SentencePieceProcessor:
    """Load the text model (default: `default_text_model_path()`).

    Raises FileNotFoundError that names the path and the command that builds the model,
    since a fresh checkout of a branch without the model file is the usual cause.
    """
    model_path = Path(path) if path is not None else default_text_model_path()
    if not model_path.is_file():
        raise FileNotFoundError(
            f"SentencePiece text model not found at {model_path}; build it with "
            f"`{BUILD_COMMAND}` (from the repository root) or set ${TEXT_MODEL_ENV}"
        )
    return spm.SentencePieceProcessor(model_file=str(model_path))
