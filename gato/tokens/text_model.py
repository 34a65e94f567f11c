"""The project's SentencePiece text model: how it is trained, where it lives, how to load it.

Text ids are [0, 32000) of the shared vocabulary (see `gato.vocab`), so the model has
exactly 32,000 pieces and reserves nothing but `<unk>` (id 0, which SentencePiece
requires); padding, separators and the like live above the text range.

Every option below serves one promise: `decode(encode(s)) == s` for every Unicode string
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

CLI (from the repository root; builds the corpus first when it is missing)::

    python -m gato.tokens.text_model --corpus data/cache/text/corpus.txt --out
    tokenizers/gato_text_32k
"""

from __future__ import annotations

import io
import os
import string
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sentencepiece as spm

from gato.files import REPO_ROOT
from gato.vocab import TEXT_VOCAB_SIZE

TEXT_MODEL_NAME = "gato_text_32k"
TEXT_MODEL_ENV = "GATO_TEXT_MODEL"
"""Environment variable that points the project at another model file."""
BUILD_COMMAND = (
    "python -m gato.tokens.text_model --corpus data/cache/text/corpus.txt"
    " --out tokenizers/gato_text_32k"
)


def default_text_model_path() -> Path:
    """`$GATO_TEXT_MODEL` if set, else `<repo>/tokenizers/gato_text_32k.model`.

    Read at call time, so tests and scripts can switch models by setting the variable.
    """
    override = os.environ.get(TEXT_MODEL_ENV)
    if override:
        return Path(override).expanduser()
    return REPO_ROOT / "tokenizers" / f"{TEXT_MODEL_NAME}.model"


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

REQUIRED_CHARS = (
    "".join(ch for ch in string.printable if not ch.isspace()) + "“”‘’—–…°£€©×éèêëàâäçîïôöûüñÉ"
)
"""Characters that get a piece of their own whatever their count in the corpus: all of
printable ASCII (so code and markup can merge into longer pieces) and the typographic
punctuation and accented letters that English text borrows."""


def rules_tsv(rules: Mapping[str, str]) -> str:
    """SentencePiece's rule-file format: source and target as hex code points, tab-separated."""

    def hexes(text: str) -> str:
        return " ".join(f"{ord(ch):X}" for ch in text)

    return "".join(f"{hexes(src)}\t{hexes(dst)}\n" for src, dst in rules.items())


def trainer_options(
    vocab_size: int = TEXT_VOCAB_SIZE,
    model_type: str = "bpe",
    input_sentence_size: int = 1_000_000,
    num_threads: int | None = None,
    character_coverage: float = 0.9999,
) -> dict[str, Any]:
    """The SentencePiece trainer options, without input and rule-file paths.

    `input_sentence_size` bounds memory: at most that many lines (paragraphs), drawn at
    random, are loaded. `split_digits` gives every number the same digit-by-digit
    spelling; whitespace-only pieces let runs of spaces (indentation) merge.
    """
    return {
        "model_type": model_type,
        "vocab_size": vocab_size,
        "character_coverage": character_coverage,
        "required_chars": REQUIRED_CHARS,
        "byte_fallback": True,
        "add_dummy_prefix": False,
        "remove_extra_whitespaces": False,
        "split_by_whitespace": True,
        "split_by_unicode_script": True,
        "split_by_number": True,
        "split_digits": True,
        "allow_whitespace_only_pieces": True,
        "treat_whitespace_as_suffix": False,
        "max_sentencepiece_length": 16,
        "max_sentence_length": 16384,
        "input_sentence_size": input_sentence_size,
        "shuffle_input_sentence": True,
        "unk_id": 0,
        "bos_id": -1,
        "eos_id": -1,
        "pad_id": -1,
        "hard_vocab_limit": True,
        "num_threads": num_threads or os.cpu_count() or 1,
    }


ROUND_TRIP_PROBES = (
    "",
    " ",
    "  leading and trailing  ",
    "line one\nline two\n\n\ttabbed\r\n",
    "\u2581 literal block \ufdd0\ufdd1\ufdd0",
    "emoji 😀👍🏽 CJK 漢字かな 한국어 e\u0301 \x00\x07\x1b",
)
"""Strings checked after training: a model that fails one of them is not written."""


def _without_rule_paths(proto: bytes) -> bytes:
    """Blank the stored paths of the temporary rule files (the rules themselves are compiled
    into the model), so that the same corpus and options give the same model bytes.

    Needs protobuf (installed with dm-control); without it the paths simply stay.
    """
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        return proto
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    model.normalizer_spec.normalization_rule_tsv = ""
    model.denormalizer_spec.normalization_rule_tsv = ""
    return model.SerializeToString()


def train_text_model(
    corpus_path: str | Path,
    out_prefix: str | Path,
    vocab_size: int = TEXT_VOCAB_SIZE,
    model_type: str = "bpe",
    input_sentence_size: int = 1_000_000,
    num_threads: int | None = None,
    character_coverage: float = 0.9999,
    seed: int = 0,
    verbose: bool = False,
) -> Path:
    """Train a SentencePiece model on a one-paragraph-per-line corpus; return its path.

    Writes only `<out_prefix>.model` (no `.vocab`), through a temporary file and
    `os.replace`, after checking that it has `vocab_size` pieces and round-trips
    `ROUND_TRIP_PROBES` exactly. `seed` fixes the sampling of input lines.
    """
    corpus_path = Path(corpus_path)
    if not corpus_path.is_file():
        raise FileNotFoundError(f"text corpus {corpus_path} does not exist")
    out_path = Path(f"{out_prefix}.model")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    options = trainer_options(
        vocab_size, model_type, input_sentence_size, num_threads, character_coverage
    )
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        norm, denorm = Path(tmp, "normalize.tsv"), Path(tmp, "denormalize.tsv")
        norm.write_text(rules_tsv(NORMALIZATION_RULES), encoding="utf-8")
        denorm.write_text(rules_tsv(DENORMALIZATION_RULES), encoding="utf-8")
        options.update(
            input=str(corpus_path),
            normalization_rule_name="user_defined",
            normalization_rule_tsv=str(norm),
            denormalization_rule_tsv=str(denorm),
        )
        spm.SetRandomGeneratorSeed(seed)
        with open(os.devnull, "w") as devnull:
            spm.SentencePieceTrainer.Train(
                logstream=None if verbose else devnull, model_writer=buffer, **options
            )
    proto = _without_rule_paths(buffer.getvalue())
    model = spm.SentencePieceProcessor(model_proto=proto)
    if model.get_piece_size() != vocab_size:
        raise RuntimeError(f"trained {model.get_piece_size()} pieces, asked for {vocab_size}")
    for probe in ROUND_TRIP_PROBES:
        if model.decode(model.encode(probe)) != probe:
            raise RuntimeError(f"trained model does not round-trip {probe!r}")

    handle = tempfile.NamedTemporaryFile(
        dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(proto)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)
        os.replace(handle.name, out_path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return out_path


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


@dataclass
class TextModelOptions:
    """What the SentencePiece trainer reads, writes and how."""

    corpus: Path | None = None
    """Corpus file (default: gato.data.corpora.text_corpus.DEFAULT_CORPUS_PATH)."""
    out: Path = REPO_ROOT / "tokenizers" / TEXT_MODEL_NAME
    """Output prefix; the model is written to <out>.model."""
    vocab_size: int = TEXT_VOCAB_SIZE
    """Text pieces."""
    model_type: Literal["bpe", "unigram"] = "bpe"
    """SentencePiece model type."""
    input_sentence_size: int = 1_000_000
    """Paragraphs sampled from the corpus for training."""
    character_coverage: float = 0.9999
    """Share of the corpus' characters the pieces must cover."""
    threads: int | None = None
    """Trainer threads (default: SentencePiece's)."""
    seed: int = 0
    """Seed of the sampling."""
    verbose: bool = False
    """Show SentencePiece's log."""


def main(argv: Sequence[str] | None = None) -> None:
    from gato.cli import parse
    from gato.data.corpora import text_corpus

    args = parse(
        TextModelOptions,
        argv,
        prog="python -m gato.tokens.text_model",
        description="Train the project's SentencePiece text model.",
    )
    if args.corpus is None:
        args.corpus = text_corpus.DEFAULT_CORPUS_PATH
    if not args.corpus.is_file():
        print(f"{args.corpus} is missing; building the corpus first")
        stats = text_corpus.build_corpus(args.corpus)
        print(f"wrote {stats.paragraphs:,d} paragraphs, {stats.bytes / 1e6:.1f} MB")
    start = time.perf_counter()
    path = train_text_model(
        args.corpus,
        args.out,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        input_sentence_size=args.input_sentence_size,
        num_threads=args.threads,
        character_coverage=args.character_coverage,
        seed=args.seed,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    print(
        f"trained a {args.model_type} model of {args.vocab_size:,d} pieces on {args.corpus} "
        f"({args.corpus.stat().st_size / 1e6:.1f} MB) in {seconds:.0f} s -> {path} "
        f"({path.stat().st_size / 1e3:.0f} kB)"
    )


if __name__ == "__main__":
    main()
