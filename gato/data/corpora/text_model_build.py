"""Training the project's SentencePiece text model on the English corpus.

The options serve the model's promise, exact round trips of any string and of concatenated
encodings (see `gato.tokens.text_model`, which loads and uses the model); a trained model that
fails one of `ROUND_TRIP_PROBES` is not written.

CLI (from the repository root; builds the corpus first when it is missing)::

    python -m gato.data.corpora.text_model_build --corpus data/cache/text/corpus.txt --out
    tokenizers/gato_text_8k --vocab_size 8192
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

from gato.cli import parse
from gato.data.corpora import text_corpus
from gato.files import REPO_ROOT
from gato.tokens.text_model import (
    DENORMALIZATION_RULES,
    NORMALIZATION_RULES,
    TEXT_MODEL_NAME,
    TEXT_MODEL_PIECES,
)
from gato.vocab import TEXT_VOCAB_SIZE

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
    vocab_size: int = TEXT_MODEL_PIECES,
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
    vocab_size: int = TEXT_MODEL_PIECES,
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
    if not 257 + len(REQUIRED_CHARS) <= vocab_size <= TEXT_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must lie in [{257 + len(REQUIRED_CHARS)}, {TEXT_VOCAB_SIZE}] (<unk>, the "
            f"256 byte pieces and the required characters; the text range of gato.vocab), got "
            f"{vocab_size}"
        )
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


@dataclass
class TextModelOptions:
    """What the SentencePiece trainer reads, writes and how."""

    corpus: Path = text_corpus.DEFAULT_CORPUS_PATH
    """Corpus file (built first when missing)."""
    out: Path = REPO_ROOT / "tokenizers" / TEXT_MODEL_NAME
    """Output prefix; the model is written to <out>.model."""
    vocab_size: int = TEXT_MODEL_PIECES
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
    args = parse(
        TextModelOptions,
        argv,
        prog="python -m gato.data.corpora.text_model_build",
        description="Train the project's SentencePiece text model.",
    )
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
