"""Text data: the English corpus as train and validation splits, and loaders for text rows.

The corpus is the one behind the SentencePiece model (`gato.data.corpora.text_corpus`, one
paragraph per
line, paragraphs cut at sentence ends to at most 2,000 characters, about 500 tokens). Splitting is
`split_corpus`: by a keyed hash of each paragraph's content, so it is deterministic for a seed,
copies of a paragraph never straddle the split, and a grown corpus moves few paragraphs across.

Rows are `text`, the JAT convention, one paragraph each. Long rows are not truncated here: the
mixture reads a split as one token stream (BOS paragraph EOS BOS paragraph EOS ...) and cuts
windows of exactly the context length at random offsets, so a paragraph longer than the context is
spread over windows rather than cut off, and short paragraphs share a window instead of padding it.

CLI: ``python -m gato.data.corpora.text --corpus data/cache/text/corpus.txt --out
data/cache/text/dataset``
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from gato.data.corpora.text_corpus import DEFAULT_CORPUS_PATH, read_paragraphs, split_corpus
from gato.data.io import load_rows, save_dataset
from gato.files import cache_dir

TEXT_DATASET_PATH = cache_dir() / "text" / "dataset"
BUILD_COMMAND = "python -m gato.data.corpora.text"
CORPUS_COMMAND = "python -m gato.data.corpora.text_corpus"
SPLITS = ("train", "validation")


def build_text_dataset(
    corpus: str | Path = DEFAULT_CORPUS_PATH,
    out: str | Path = TEXT_DATASET_PATH,
    validation_fraction: float = 0.01,
    seed: int = 0,
) -> datasets.DatasetDict:
    """Split the corpus file into `train` and `validation` rows of `text`; save atomically."""
    corpus = Path(corpus)
    if not corpus.exists():
        raise FileNotFoundError(f"{corpus}: no text corpus; build it with `{CORPUS_COMMAND}`")
    paragraphs = read_paragraphs(corpus)
    if len(paragraphs) < 2:
        raise ValueError(f"{corpus}: needs at least two paragraphs to split, has {len(paragraphs)}")
    split = split_corpus(paragraphs, validation_fraction=validation_fraction, seed=seed)
    features = datasets.Features({"text": datasets.Value("string")})
    dataset = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": split.train}, features=features),
            "validation": datasets.Dataset.from_dict({"text": split.validation}, features=features),
        }
    )
    save_dataset(dataset, out)
    return dataset


def load_texts(
    source: str | Path = TEXT_DATASET_PATH, split: str = "train", name: str | None = None
) -> datasets.Dataset:
    """One split of a text dataset (`text` rows): a saved folder, Parquet files, or a hub id.

    A missing `text` column is a `ValueError` listing the columns there are.
    """
    if Path(source).resolve() == TEXT_DATASET_PATH and not TEXT_DATASET_PATH.exists():
        raise FileNotFoundError(
            f"{source}: no text dataset; build it with `{BUILD_COMMAND}` "
            f"(the corpus first with `{CORPUS_COMMAND}` if it is missing)"
        )
    return load_rows(source, split, name=name, required_columns=("text",))


def iter_texts(
    dataset: datasets.Dataset, source: str = "text", batch_size: int = 4096
) -> Iterator[list[str]]:
    """The `text` column in batches of strings; a non-string row is a `ValueError` naming it.

    Empty strings are kept (they tokenize to BOS EOS): dropping rows would shift what a seed means.
    """
    column = dataset.select_columns(["text"])
    for start in range(0, len(column), batch_size):
        texts = column[start : start + batch_size]["text"]
        for offset, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(
                    f"{source} row {start + offset}: `text` must be a string, "
                    f"got {type(text).__name__}"
                )
        yield texts


@dataclass
class TextOptions:
    """Which corpus becomes which text dataset."""

    corpus: Path = DEFAULT_CORPUS_PATH
    """Corpus file."""
    out: Path = TEXT_DATASET_PATH
    """Output folder."""
    validation_fraction: float = 0.01
    """Share of the distinct paragraphs held out for validation."""
    seed: int = 0
    """Seed of the split."""


def main(argv: Sequence[str] | None = None) -> None:
    from gato.cli import parse

    args = parse(
        TextOptions,
        argv,
        prog="python -m gato.data.corpora.text",
        description=__doc__.split("\n\n")[0],
    )
    start = time.perf_counter()
    dataset = build_text_dataset(args.corpus, args.out, args.validation_fraction, args.seed)
    counts = ", ".join(f"{k} {len(v):,d}" for k, v in dataset.items())
    print(f"text: {counts} rows -> {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
