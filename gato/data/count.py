"""How much data: episodes, timesteps and tokens per config, exact or estimated from a sample.

`python -m gato.data count SOURCE` answers the question JAT's users ask ("how many tokens does
the dataset hold?") with the tokenizer training uses, so the numbers are the ones a mixture
would see. SOURCE is a dataset folder, Parquet files, a local mirror of a multi-config hub
dataset (every config folder is counted), or a hub id.

- Local data is counted exactly: every row is read and tokenized (empty episodes are dropped,
  as the loaders drop them).
- A hub dataset is too large to scan (JAT's is about 1 TB): the first `sample` rows of each
  config are streamed and tokenized, and the totals are scaled by the row count the hub
  publishes for the split. Such rows are labelled estimates, with the sample size. `sample`
  applies to local data too when an estimate is enough.

A row of `images` + `text` (captions, VQA) or of `text` is one timestep; a control episode has
one timestep per step. `rows` counts every row, `episodes` the non-empty ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gato.data.io import config_folders, file_split


@dataclass
class Count:
    """The data of one config and split."""

    config: str
    split: str
    kind: str
    """control, captions or text."""
    episodes: int
    timesteps: int
    tokens: int
    estimated: bool = False
    """Totals scaled up from `sampled` rows (else exact)."""
    sampled: int = 0
    """Rows read for an estimate (empty episodes included)."""
    rows: int = 0
    """Rows the split holds (empty episodes included)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_kind(columns: Iterable[str]) -> str:
    """What a dataset's rows are, from its columns: control episodes, image-text pairs, text."""
    columns = set(columns)
    if "rewards" in columns:
        return "control"
    if {"images", "text"} <= columns:
        return "captions"
    if "text" in columns:
        return "text"
    raise ValueError(
        f"cannot tell the rows apart: columns {sorted(columns)} are neither control episodes "
        "('rewards' and observations), image-text pairs ('images', 'text') nor text ('text')"
    )


def _row_counts(kind: str, rows: Iterable[dict[str, Any]], tokenizer, where: str
                ) -> Iterator[tuple[int, int]]:  # fmt: skip
    """(timesteps, tokens) of each row, tokenized as the mixture's sources tokenize it."""
    from gato.data.corpora.vision_language import decode_image

    for index, row in enumerate(rows):
        if kind == "control":
            yield len(row["rewards"]), len(tokenizer.encode_jat_episode(row))
        elif kind == "captions":
            image = decode_image(row["images"], f"{where} row {index}")
            yield 1, len(tokenizer.encode_caption(image, row["text"], row.get("question")))
        else:
            text = row["text"]
            if not isinstance(text, str):
                raise ValueError(f"{where} row {index}: `text` must be a string")
            yield 1, len(tokenizer.text_model.encode([text])[0]) + 2  # BOS text EOS


def _stream(source: str | Path, name: str | None, split: str):
    """(kind, streamed rows, empty-row counter) of one config: episodes checked and stripped
    of empty ones, like `load_episodes`; other rows as they are."""
    import datasets

    from gato.data.episodes import load_episodes
    from gato.data.io import load_rows

    rows = load_rows(source, split, name=name, streaming=True)
    kind = row_kind(rows.features or next(iter(rows)))
    if kind == "control":
        return kind, load_episodes(source, split=split, streaming=True, name=name)
    if kind == "captions" and isinstance(rows.features["images"], datasets.Image):
        rows = rows.cast_column("images", datasets.Image(decode=False))
    return kind, rows


def _total_rows(source: str | Path, name: str | None, split: str) -> int | None:
    """Rows of the split without reading them: Parquet footers locally, the hub's metadata."""
    path = Path(source)
    if path.exists():
        import pyarrow.parquet as pq

        folder = path / name if name and (path / name).is_dir() else path
        files = [path] if path.is_file() else sorted(folder.rglob("*.parquet"))
        named = {f: file_split(f, folder) for f in files}
        if any(s is not None for s in named.values()):
            files = [f for f, s in named.items() if s == split]
        if not files:
            return None
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    import datasets

    info = datasets.load_dataset_builder(str(source), name).info
    splits = info.splits or {}
    return int(splits[split].num_examples) if split in splits else None


def count_config(
    source: str | Path,
    name: str | None = None,
    split: str = "train",
    sample: int | None = None,
    tokenizer=None,
) -> Count:
    """Episodes, timesteps and tokens of one config's split; an estimate when `sample` is set
    (the first `sample` rows, scaled by the split's row count)."""
    from gato.tokens.tokenizer import GatoTokenizer

    if sample is not None and sample < 1:
        raise ValueError(f"count: sample must be a positive number of rows, got {sample}")
    tokenizer = tokenizer or GatoTokenizer()
    where = f"{source} [{name or '-'}, {split}]"
    kind, rows = _stream(source, name, split)
    episodes = timesteps = tokens = 0
    limited = _first(rows, sample) if sample is not None else rows
    with warnings.catch_warnings():
        # Empty episodes are dropped as the loaders drop them; the table shows rows - episodes.
        warnings.filterwarnings("ignore", message=".*empty episodes")
        for steps, count in _row_counts(kind, limited, tokenizer, where):
            episodes += 1
            timesteps += steps
            tokens += count
    read = getattr(rows, "position", None) or episodes  # episode streams count empty rows too
    config = name or Path(str(source)).name
    if sample is None or read < sample:  # the whole split was read: exact
        return Count(config, split, kind, episodes, timesteps, tokens, rows=read)
    total = _total_rows(source, name, split)
    if total is not None and read >= total:
        return Count(config, split, kind, episodes, timesteps, tokens, rows=read)
    if total is None:
        raise ValueError(f"{where}: the number of rows is unknown; cannot scale up a sample")
    scale = total / read
    return Count(config, split, kind, round(episodes * scale), round(timesteps * scale),
                 round(tokens * scale), estimated=True, sampled=read, rows=total)  # fmt: skip


def _first(rows: Iterable[Any], limit: int) -> Iterator[Any]:
    """The rows of the first `limit` read from the stream (empty episodes count as read)."""
    position = getattr(rows, "position", None)
    for index, row in enumerate(rows):
        yield row
        done = (rows.position if position is not None else index + 1) >= limit
        if done:
            return


def configs_of(source: str | Path, names: list[str] | None) -> list[str | None]:
    """The configs to count: the given names, every config folder of a local mirror, every
    config of a hub dataset, or the one dataset itself (None)."""
    if names:
        return list(names)
    path = Path(source)
    if path.exists():
        folders = config_folders(path) if path.is_dir() else []
        direct = path.is_file() or any(path.glob("*.parquet")) or (path / "state.json").exists()
        return [None] if direct or not folders else list(folders)
    import datasets

    return list(datasets.get_dataset_config_names(str(source)))


def format_counts(counts: list[Count]) -> str:
    """A table: config, split, kind, episodes, timesteps, tokens, and how they were counted."""
    header = (
        f"{'config':28s} {'split':6s} {'kind':8s} {'rows':>12s} {'episodes':>12s} "
        f"{'timesteps':>15s} {'tokens':>17s}  counted"
    )
    lines = [header]
    for c in counts:
        how = f"ESTIMATE from {c.sampled:,d} of {c.rows:,d} rows" if c.estimated else "exact"
        steps = f"{c.timesteps:,d}" if c.kind == "control" else "-"
        lines.append(
            f"{c.config:28s} {c.split:6s} {c.kind:8s} {c.rows:>12,d} {c.episodes:>12,d} "
            f"{steps:>15s} {c.tokens:>17,d}  {how}"
        )
    steps = sum(c.timesteps for c in counts if c.kind == "control")
    how = "includes estimates" if any(c.estimated for c in counts) else "exact"
    lines.append(
        f"{'total':28s} {'':6s} {'':8s} {sum(c.rows for c in counts):>12,d} "
        f"{sum(c.episodes for c in counts):>12,d} {steps:>15,d} "
        f"{sum(c.tokens for c in counts):>17,d}  {how}"
    )
    return "\n".join(lines)
