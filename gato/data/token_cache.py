"""Tokenize a dataset once into memory-mapped numpy files; read windows back without copies.

Layout of one cache, `<root>/<source name>/<split>-<fingerprint>/`:

| file                  | dtype  | shape        | what                                        |
| --------------------- | ------ | ------------ | ------------------------------------------- |
| ids.bin               | uint16 | (N,)         | token ids of every episode, end to end      |
| local_positions.bin   | int16  | (N,)         | local positions (-1: none)                  |
| loss_mask.bin         | bool   | (N,)         | prediction targets                          |
| planes.bin            | uint8  | (Q, S, S)    | distinct patch channels of each sequence    |
| patch_planes.bin      | uint32 | (P, C)       | each patch's channels, as indices of planes |
| (patches.bin)         | uint8  | (P, C, S, S) | caches written before planes: whole patches |
| patch_positions.bin   | uint8  | (P, 4)       | [row_lo, row_hi, col_lo, col_hi) in bins    |
| step_starts.bin       | int64  | (K,)         | global token offset of every timestep       |
| step_patch_starts.bin | int64  | (K,)         | global patch offset of every timestep       |
| episode_tokens.npy    | int64  | (E + 1,)     | token offset of each episode, and the end   |
| episode_steps.npy     | int64  | (E + 1,)     | step offset of each episode, and the end    |
| meta.json             |        |              | source, fingerprint, counts, longest step   |

Ids fit uint16 (the vocabulary has 34,053 ids) and bins fit uint8 (128 bins), which halves to
eighths the bytes a window reads; readers widen to int64 when a window is cut. Patches stay uint8
until the model normalises them on its device. A patch is stored as the indices of its channels'
planes, each distinct plane of a sequence once (`gato.data.planes`): an Atari stack's frames come
back in the next three stacks, and its background repeats, so Pong's patches take a small share
of their bytes (benchmarks/RESULTS.md, "Patch planes"); reading gathers them back whole.
`meta.json` says so (`"patch_layout": "planes"`); a cache written before keeps whole patches in
`patches.bin` and is read as it is (the tokens mean the same, so it is not rebuilt).
A cache is written into a temporary folder and renamed into place, so a reader sees a whole
cache or none; the fingerprint hashes the source dataset's fingerprint, size and columns, the
tokenizer's settings and the SentencePiece model's bytes, so changing any of them builds a new
cache (and older caches of the same source, i.e. the same dataset location and settings, are
removed; other datasets filed under the name stay).

What a row becomes is the source's business (`gato.data.sources`: control episodes, image-text
pairs, text); a cache only stores the token sequences.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gato.data.planes import PLANE_INDEX_DTYPE, gather_patches, unique_planes
from gato.files import cache_dir
from gato.tokens.batch import TokenSequence
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import PATCH_ID

DEFAULT_CACHE_ROOT = cache_dir() / "tokens"
CACHE_VERSION = 1
"""Bump when the meaning of a cache changes: old caches are then rebuilt. A new layout that
reads back the same tokens is recorded in meta.json instead (`PATCH_LAYOUT`), so caches on disk
stay in use."""
PATCH_LAYOUT = "planes"
"""How this version writes patches: "planes" (distinct planes and indices); caches without the
key hold them whole ("whole", `patches.bin`)."""

_TOKEN_FILES = {"ids": np.uint16, "local_positions": np.int16, "loss_mask": np.bool_}
_STEP_FILES = {"step_starts": np.int64, "step_patch_starts": np.int64}


class CacheInput(Protocol):
    """What a cache is built from: a source (`gato.data.sources.Source`)."""

    name: str
    """Folder name under the cache root: a task id or a source name."""
    split: str
    """Split to tokenize."""

    def record(self) -> dict[str, Any]:
        """The source's settings: they name the cache, and a newer cache replaces one of the
        same record."""

    def load(self) -> Any:
        """The rows, a `datasets.Dataset`."""

    def tokenize(self, dataset: Any, tokenizer: GatoTokenizer) -> Iterator[TokenSequence]:
        """One `TokenSequence` per row."""

    def uses_text(self, columns: list[str]) -> bool:
        """Whether the tokens depend on the SentencePiece model."""


# ---------------------------------------------------------------------------------------------
# Fingerprints
# ---------------------------------------------------------------------------------------------

_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_DIGESTS[key]


def tokenizer_settings(tokenizer: GatoTokenizer, uses_text: bool = True) -> dict[str, Any]:
    """Everything about the tokenizer that changes a source's tokens.

    The SentencePiece model's bytes count only for sources with text (captions, text, control
    episodes with text observations), so a new text model leaves pure control caches valid.
    """
    settings: dict[str, Any] = {
        "patch_size": tokenizer.patch_size,
        "image_channels": tokenizer.image_channels,
        "num_position_bins": tokenizer.num_position_bins,
        "mu": tokenizer.mu,
        "M": tokenizer.M,
        "text_observation_loss": tokenizer.text_observation_loss,
    }
    if tokenizer.observation_statistics is not None:
        settings["observation_statistics"] = tokenizer.observation_statistics.to_dict()
    if uses_text:
        from gato.tokens.text_model import default_text_model_path

        model = Path(tokenizer.text_model_path or default_text_model_path())
        settings["text_model"] = _file_digest(model) if model.exists() else str(model)
    return settings


def fingerprint(source: CacheInput, dataset, tokenizer: GatoTokenizer) -> str:
    """16 hex digits naming the cache of (source, dataset content, tokenizer settings)."""
    record = {
        "version": CACHE_VERSION,
        "source": {k: v for k, v in source.record().items() if k != "name"},
        "dataset": getattr(dataset, "_fingerprint", None),
        "rows": len(dataset),
        "columns": sorted(dataset.column_names),
        "tokenizer": tokenizer_settings(tokenizer, source.uses_text(dataset.column_names)),
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class _Prepared:
    """A sequence checked and its patches split into planes, ready to append."""

    def __init__(self, seq: TokenSequence, planes: np.ndarray, plane_index: np.ndarray) -> None:
        self.seq = seq
        self.planes = planes
        self.plane_index = plane_index

    @property
    def nbytes(self) -> int:
        """Bytes the sequence adds to a cache: ids, local positions and loss mask (5 a token),
        planes, plane indices and patch positions, and two step offsets a timestep."""
        patches = self.plane_index.shape[0]
        return (
            5 * len(self.seq)
            + self.planes.nbytes
            + self.plane_index.nbytes
            + 4 * patches
            + 16 * max(1, self.seq.num_timesteps)
        )


class _Writer:
    """Appends sequences to the flat files; `close` writes offsets and meta.json."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        names = [*_TOKEN_FILES, *_STEP_FILES, "planes", "patch_planes", "patch_positions"]
        self.files = {name: open(folder / f"{name}.bin", "wb") for name in names}  # noqa: SIM115
        self.episode_tokens = [0]
        self.episode_steps = [0]
        self.num_patches = 0
        self.num_planes = 0
        self.patch_shape: tuple[int, ...] | None = None
        self.max_step_tokens = 0
        self.max_episode_tokens = 0

    def prepare(self, seq: TokenSequence, where: str) -> _Prepared:
        """Check a sequence against the cache's types and earlier rows; split its patches."""
        n = len(seq)
        if n == 0:
            raise ValueError(f"{where}: tokenized to no tokens")
        if seq.ids.min() < 0 or seq.ids.max() > np.iinfo(np.uint16).max:
            raise ValueError(f"{where}: token ids outside [0, 65535] cannot be cached as uint16")
        if seq.local_positions.max() > np.iinfo(np.int16).max:
            raise ValueError(f"{where}: local positions above 32767 cannot be cached as int16")
        if seq.patches.shape[0]:
            if self.patch_shape is None:
                self.patch_shape = tuple(seq.patches.shape[1:])
            elif tuple(seq.patches.shape[1:]) != self.patch_shape:
                raise ValueError(
                    f"{where}: patches of shape {seq.patches.shape[1:]}, earlier rows had "
                    f"{self.patch_shape}"
                )
            if seq.patch_positions.max() > 255 or seq.patch_positions.min() < 0:
                raise ValueError(f"{where}: patch positions must lie in [0, 255] to be cached")
        planes, index = unique_planes(np.ascontiguousarray(seq.patches, dtype=np.uint8))
        if self.num_planes + len(planes) > np.iinfo(PLANE_INDEX_DTYPE).max:
            raise ValueError(
                f"{where}: more than {np.iinfo(PLANE_INDEX_DTYPE).max:,d} distinct patch planes "
                "in one cache; split the dataset"
            )
        return _Prepared(seq, planes, index)

    def append(self, prepared: _Prepared) -> None:
        seq = prepared.seq
        n = len(seq)
        token_base = self.episode_tokens[-1]
        bounds = np.append(seq.timestep_starts, n) if seq.num_timesteps else np.array([0, n])
        starts = bounds[:-1]
        is_patch = seq.ids == PATCH_ID
        patch_cum = np.concatenate([[0], np.cumsum(is_patch)])
        self.files["ids"].write(seq.ids.astype(np.uint16).tobytes())
        self.files["local_positions"].write(seq.local_positions.astype(np.int16).tobytes())
        self.files["loss_mask"].write(seq.loss_mask.astype(np.bool_).tobytes())
        self.files["planes"].write(prepared.planes.tobytes())
        plane_index = prepared.plane_index + PLANE_INDEX_DTYPE(self.num_planes)
        self.files["patch_planes"].write(plane_index.astype(PLANE_INDEX_DTYPE).tobytes())
        self.files["patch_positions"].write(seq.patch_positions.astype(np.uint8).tobytes())
        self.files["step_starts"].write((starts + token_base).astype(np.int64).tobytes())
        step_patches = patch_cum[starts] + self.num_patches
        self.files["step_patch_starts"].write(step_patches.astype(np.int64).tobytes())
        self.num_patches += int(seq.patches.shape[0])
        self.num_planes += len(prepared.planes)
        self.episode_tokens.append(token_base + n)
        self.episode_steps.append(self.episode_steps[-1] + len(starts))
        self.max_step_tokens = max(self.max_step_tokens, int(np.diff(bounds).max()))
        self.max_episode_tokens = max(self.max_episode_tokens, n)

    def close(self, meta: dict[str, Any], tokenizer: GatoTokenizer) -> None:
        for handle in self.files.values():
            handle.close()
        np.save(self.folder / "episode_tokens.npy", np.asarray(self.episode_tokens, np.int64))
        np.save(self.folder / "episode_steps.npy", np.asarray(self.episode_steps, np.int64))
        patch_shape = self.patch_shape or (
            tokenizer.image_channels,
            tokenizer.patch_size,
            tokenizer.patch_size,
        )
        meta = dict(
            meta,
            num_episodes=len(self.episode_tokens) - 1,
            num_tokens=self.episode_tokens[-1],
            num_steps=self.episode_steps[-1],
            num_patches=self.num_patches,
            num_planes=self.num_planes,
            patch_layout=PATCH_LAYOUT,
            patch_shape=list(patch_shape),
            max_step_tokens=self.max_step_tokens,
            max_episode_tokens=self.max_episode_tokens,
        )
        (self.folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))

    def abort(self) -> None:
        for handle in self.files.values():
            handle.close()


def build_cache(
    source: CacheInput,
    tokenizer: GatoTokenizer,
    root: str | Path = DEFAULT_CACHE_ROOT,
    dataset=None,
    progress: bool = False,
) -> TokenCache:
    """Tokenize the source into `<root>/<name>/<split>-<fingerprint>/` (atomically).

    Returns the existing cache when its fingerprint matches; otherwise builds it, then removes
    caches of the same split with other fingerprints.
    """
    dataset = source.load() if dataset is None else dataset
    key = fingerprint(source, dataset, tokenizer)
    parent = Path(root) / source.name
    final = parent / f"{source.split}-{key}"
    if (final / "meta.json").exists():
        return TokenCache(final)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{source.split}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    writer = _Writer(tmp)
    try:
        sequences = source.tokenize(dataset, tokenizer)
        if progress:
            from tqdm import tqdm

            sequences = tqdm(sequences, total=len(dataset), desc=f"tokenizing {source.name}")
        for index, seq in enumerate(sequences):
            writer.append(writer.prepare(seq, f"{source.name} row {index}"))
        meta = {
            "version": CACHE_VERSION,
            "fingerprint": key,
            "source": source.record(),
            "tokenizer": tokenizer_settings(tokenizer, source.uses_text(dataset.column_names)),
        }
        writer.close(meta, tokenizer)
        _move_into_place(tmp, final)
    except BaseException:
        writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(parent, final, source)
    return TokenCache(final)


def stream_fingerprint(source: CacheInput, tokenizer: GatoTokenizer, budget: int) -> str:
    """16 hex digits naming a streamed cache: the source, the files it streams (names, sizes,
    modification times; a hub id names its config and split), the budget and the tokenizer."""
    files = []
    path = Path(source.record()["path"])
    if path.exists():
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet"))
        files = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in found]
    record = {
        "version": CACHE_VERSION,
        "streamed": True,
        # Caches streamed before raw actions were mapped by the task's bounds clipped them.
        "actions": "task-scaled",
        "source": {k: v for k, v in source.record().items() if k != "name"},
        "files": files,
        "budget": budget,
        "tokenizer": tokenizer_settings(tokenizer, True),
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_streamed_cache(
    source: Any,
    tokenizer: GatoTokenizer,
    root: str | Path = DEFAULT_CACHE_ROOT,
    budget_bytes: int = 10 * 2**30,
    progress: bool = False,
) -> TokenCache:
    """Tokenize a control source read as a stream, shard by shard, into a cache of at most
    `budget_bytes` on disk; the same layout as `build_cache`, readable by `TokenCache`.

    Nothing is downloaded whole: the episodes arrive from the stream (`load_episodes(...,
    streaming=True)`: local Parquet shards or a hub config) and only their tokens are kept.
    The cache stops before the episode that would pass the budget; `meta.json` says whether the
    stream was read to its end (`complete`) and how many episodes it read. Written into a
    temporary folder and renamed into place: an interrupted build leaves the previous complete
    cache, which is replaced only once the new one is whole.
    """
    from gato.data.episodes import load_episodes

    if budget_bytes < 1:
        raise ValueError(f"build_streamed_cache: budget_bytes must be positive, got {budget_bytes}")
    task = source.task() if hasattr(source, "task") else None
    key = stream_fingerprint(source, tokenizer, budget_bytes)
    parent = Path(root) / source.name
    final = parent / f"{source.split}-{key}"
    if (final / "meta.json").exists():
        return TokenCache(final)
    episodes = load_episodes(
        source.path, task=task, split=source.split, streaming=True, name=source.hub_name
    )
    # Raw JAT and Minari actions mapped by the task's bounds, as `build_cache` encodes them.
    encoding = ()
    if hasattr(source, "action_encoding"):
        encoding = source.action_encoding(episodes.dataset)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{source.split}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    writer = _Writer(tmp)
    used, complete = 0, True
    try:
        rows = iter(episodes)
        if progress:
            from tqdm import tqdm

            rows = tqdm(rows, desc=f"streaming {source.name}", unit="ep")
        for index, row in enumerate(rows):
            where = f"{source.name} episode {episodes.position - 1}"
            try:
                seq = tokenizer.encode_jat_episode(row, *encoding)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            prepared = writer.prepare(seq, where)
            size = prepared.nbytes
            if used + size > budget_bytes:
                if index == 0:
                    raise ValueError(
                        f"{where}: {size:,d} bytes of tokens, more than the budget of "
                        f"{budget_bytes:,d}"
                    )
                complete = False
                break
            writer.append(prepared)
            used += size
        meta = {
            "version": CACHE_VERSION,
            "fingerprint": key,
            "source": source.record(),
            "tokenizer": tokenizer_settings(tokenizer, True),
            "streamed": {
                "budget_bytes": budget_bytes,
                "bytes": used,
                "complete": complete,
                "episodes_read": episodes.position,
            },
        }
        writer.close(meta, tokenizer)
        _move_into_place(tmp, final)
    except BaseException:
        writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(parent, final, source, streamed=True)
    return TokenCache(final)


def _move_into_place(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / "meta.json").exists():  # not a concurrent build of the same cache
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(parent: Path, final: Path, source: CacheInput, streamed: bool = False) -> None:
    """Remove older caches of this very source (same dataset location and settings).

    Caches of other datasets filed under the same name stay: two runs may train on two versions
    of a task's data (a re-collection under another folder, say) at once, and removing one's
    cache while it trains would fail it.
    """
    wanted = source.record()
    for stale in parent.glob(f"{source.split}-*"):
        if stale == final or not stale.is_dir():
            continue
        try:
            meta = json.loads((stale / "meta.json").read_text())
        except (OSError, ValueError):
            continue  # not a finished cache: not ours to judge
        if meta.get("source") == wanted and ("streamed" in meta) == streamed:
            shutil.rmtree(stale, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[i], stops[i]) as one int64 index array."""
    lengths = stops - starts
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)


class TokenCache:
    """A built cache, memory-mapped on first use (and again in each DataLoader worker)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.exists():
            raise FileNotFoundError(f"{self.path}: not a token cache (no meta.json)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        if self.meta.get("version") != CACHE_VERSION:
            raise ValueError(
                f"{self.path}: cache version {self.meta.get('version')}, "
                f"expected {CACHE_VERSION}; rebuild it"
            )
        if self.meta.get("patch_layout", "whole") not in ("planes", "whole"):
            raise ValueError(
                f"{self.path}: unknown patch layout {self.meta['patch_layout']!r} (this version "
                "reads 'planes' and 'whole'); rebuild it"
            )
        self.episode_tokens = np.load(self.path / "episode_tokens.npy")
        self.episode_steps = np.load(self.path / "episode_steps.npy")
        self._maps: dict[str, np.ndarray] | None = None
        self._episode_patches: np.ndarray | None = None
        self._min_episode_tokens: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap would copy its data into the worker: reopen there instead.
        state = self.__dict__.copy()
        state["_maps"] = None
        return state

    @property
    def maps(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            maps = {}
            n, k, p = self.num_tokens, self.meta["num_steps"], self.num_patches
            channels, *plane = self.meta["patch_shape"]
            shapes = {
                **{name: (n,) for name in _TOKEN_FILES},
                **{name: (k,) for name in _STEP_FILES},
                "patch_positions": (p, 4),
            }
            dtypes = {**_TOKEN_FILES, **_STEP_FILES, "patch_positions": np.uint8}
            if self.patch_layout == "planes":
                shapes["planes"] = (int(self.meta["num_planes"]), *plane)
                shapes["patch_planes"] = (p, channels)
                dtypes["planes"], dtypes["patch_planes"] = np.uint8, PLANE_INDEX_DTYPE
            else:
                shapes["patches"] = (p, channels, *plane)
                dtypes["patches"] = np.uint8
            for name, shape in shapes.items():
                if int(np.prod(shape)) == 0:
                    maps[name] = np.zeros(shape, dtype=dtypes[name])
                else:
                    maps[name] = np.memmap(
                        self.path / f"{name}.bin", dtype=dtypes[name], mode="r", shape=shape
                    )
            self._maps = maps
        return self._maps

    @property
    def patch_layout(self) -> str:
        """ "planes" (this version's) or "whole" (a cache written before planes)."""
        return str(self.meta.get("patch_layout", "whole"))

    def patches_at(self, index: slice | np.ndarray) -> np.ndarray:
        """(N, C, S, S) uint8 patches at `index` (a slice or int64 positions), either layout."""
        maps = self.maps
        if self.patch_layout == "planes":
            return gather_patches(maps["planes"], maps["patch_planes"][index])
        return np.array(maps["patches"][index])

    @property
    def num_episodes(self) -> int:
        return int(self.meta["num_episodes"])

    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])

    @property
    def num_patches(self) -> int:
        return int(self.meta["num_patches"])

    @property
    def max_step_tokens(self) -> int:
        """Tokens of the longest timestep (an image-text pair for captions, a row for text)."""
        return int(self.meta["max_step_tokens"])

    def episode_lengths(self) -> np.ndarray:
        """(E,) tokens per episode."""
        return np.diff(self.episode_tokens)

    @property
    def min_episode_tokens(self) -> int:
        """Tokens of the shortest episode (derived once, on first use)."""
        if self._min_episode_tokens is None:
            self._min_episode_tokens = int(self.episode_lengths().min())
        return self._min_episode_tokens

    def bounds(self, episode: int) -> np.ndarray:
        """(T + 1,) step bounds of an episode, relative to its first token (see
        gato.tokens.windows)."""
        lo, hi = self.episode_steps[episode], self.episode_steps[episode + 1]
        base = self.episode_tokens[episode]
        starts = np.asarray(self.maps["step_starts"][lo:hi], dtype=np.int64) - base
        return np.append(starts, self.episode_tokens[episode + 1] - base)

    def read(self, start: int, stop: int) -> TokenSequence:
        """Tokens [start, stop) of the flat stream (global offsets) with their patches.

        Timestep starts inside the range come along; patches are found through the per-step
        patch offsets, so reading costs O(stop - start), not O(position).
        """
        maps = self.maps
        ids = np.asarray(maps["ids"][start:stop], dtype=np.int64)
        steps = maps["step_starts"]
        lo = int(np.searchsorted(steps, start, side="left"))
        hi = int(np.searchsorted(steps, stop, side="left"))
        timestep_starts = np.asarray(steps[lo:hi], dtype=np.int64) - start
        if self.num_patches:
            k = max(0, int(np.searchsorted(steps, start, side="right")) - 1)
            step_start = int(steps[k])
            before = np.count_nonzero(maps["ids"][step_start:start] == PATCH_ID)
            first_patch = int(maps["step_patch_starts"][k]) + int(before)
            count = int(np.count_nonzero(ids == PATCH_ID))
            patches = self.patches_at(slice(first_patch, first_patch + count))
            positions = np.asarray(
                maps["patch_positions"][first_patch : first_patch + count], dtype=np.int64
            )
        else:
            patches = np.zeros((0, *self.meta["patch_shape"]), np.uint8)
            positions = np.zeros((0, 4), np.int64)
        return TokenSequence(
            ids=ids,
            local_positions=np.asarray(maps["local_positions"][start:stop], dtype=np.int64),
            loss_mask=np.array(maps["loss_mask"][start:stop]),
            patches=patches,
            patch_positions=positions,
            timestep_starts=timestep_starts,
        )

    def read_steps(self, episode: int, first: int, stop: int) -> TokenSequence:
        """Timesteps [first, stop) of an episode."""
        return self.read(self._step_token(episode, first), self._step_token(episode, stop))

    def _step_token(self, episode: int, step: int) -> int:
        """Global token offset of an episode's timestep `step` (its end when step == T)."""
        index = int(self.episode_steps[episode]) + step
        if index < int(self.episode_steps[episode + 1]):
            return int(self.maps["step_starts"][index])
        return int(self.episode_tokens[episode + 1])

    @property
    def episode_patches(self) -> np.ndarray:
        """(E + 1,) patch offset of each episode, and the end (derived once, on first use)."""
        if self._episode_patches is None:
            starts = self.maps["step_patch_starts"]
            first_steps = self.episode_steps[:-1]
            if self.num_patches == 0 or len(starts) == 0:
                offsets = np.zeros(self.num_episodes, np.int64)
            else:
                offsets = np.asarray(starts[first_steps], dtype=np.int64)
            self._episode_patches = np.append(offsets, np.int64(self.num_patches))
        return self._episode_patches

    def read_episodes(self, indices: np.ndarray) -> TokenSequence:
        """Whole episodes back to back (image-text pairs of one sequence), in one gather.

        Equal to `TokenSequence.pack([self.episode(i) for i in indices])` (each episode its own
        segment), without a Python-level read per episode.
        """
        indices = np.asarray(indices, dtype=np.int64)
        return self._gather(
            self.episode_tokens[indices],
            self.episode_tokens[indices + 1],
            self.episode_steps[indices],
            self.episode_steps[indices + 1],
            self.episode_patches[indices],
            self.episode_patches[indices + 1],
        )

    def read_windows(
        self, episodes: np.ndarray, firsts: np.ndarray, stops: np.ndarray
    ) -> TokenSequence:
        """Timesteps [firsts[i], stops[i]) of episodes[i], back to back, in one gather.

        Equal to `TokenSequence.pack([self.read_steps(e, f, s) for e, f, s in ...])` (each
        window its own segment; an empty window begins none), without a Python-level read per
        window: short control windows are many a row (Pong: 9, each of one timestep).
        """
        episodes = np.asarray(episodes, dtype=np.int64)
        firsts, stops = np.asarray(firsts, np.int64), np.asarray(stops, np.int64)
        lo, hi = self.episode_steps[episodes], self.episode_steps[episodes + 1]
        if ((firsts < 0) | (stops < firsts) | (lo + stops > hi)).any():
            raise ValueError(
                f"read_windows: windows [first, stop) must lie within their episodes' "
                f"timesteps; got firsts {firsts.tolist()}, stops {stops.tolist()} for episodes "
                f"of {(hi - lo).tolist()} timesteps"
            )
        first_steps, stop_steps = lo + firsts, lo + stops
        maps = self.maps
        token_ends = self.episode_tokens[episodes + 1]
        patch_ends = self.episode_patches[episodes + 1]

        def at(steps: np.ndarray, name: str, ends: np.ndarray) -> np.ndarray:
            # A step's offset, or the episode's end where the window runs to it.
            inside = steps < hi
            values = np.asarray(maps[name][np.where(inside, steps, 0)], dtype=np.int64)
            return np.where(inside, values, ends)

        patch_starts = "step_patch_starts"
        return self._gather(
            at(first_steps, "step_starts", token_ends),
            at(stop_steps, "step_starts", token_ends),
            first_steps,
            stop_steps,
            at(first_steps, patch_starts, patch_ends) if self.num_patches else first_steps * 0,
            at(stop_steps, patch_starts, patch_ends) if self.num_patches else first_steps * 0,
        )

    def _gather(
        self,
        starts: np.ndarray,
        ends: np.ndarray,
        step_lo: np.ndarray,
        step_hi: np.ndarray,
        patch_lo: np.ndarray,
        patch_hi: np.ndarray,
    ) -> TokenSequence:
        """Token ranges [starts, ends) that begin at timesteps step_lo (their steps [step_lo,
        step_hi), their patches [patch_lo, patch_hi)), packed: each range its own segment."""
        maps = self.maps
        tokens = _ranges(starts, ends)
        lengths = ends - starts
        out_offsets = np.cumsum(lengths) - lengths
        steps = _ranges(step_lo, step_hi)
        shift = np.repeat(out_offsets - starts, step_hi - step_lo)
        timestep_starts = np.asarray(maps["step_starts"][steps], dtype=np.int64) + shift
        if self.num_patches:
            patch_index = _ranges(patch_lo, patch_hi)
            patches = self.patches_at(patch_index)
            positions = np.asarray(maps["patch_positions"][patch_index], dtype=np.int64)
        else:
            patches = np.zeros((0, *self.meta["patch_shape"]), np.uint8)
            positions = np.zeros((0, 4), np.int64)
        return TokenSequence(
            ids=np.asarray(maps["ids"][tokens], dtype=np.int64),
            local_positions=np.asarray(maps["local_positions"][tokens], dtype=np.int64),
            loss_mask=np.asarray(maps["loss_mask"][tokens]),
            patches=np.asarray(patches),
            patch_positions=positions,
            timestep_starts=timestep_starts,
            segment_starts=out_offsets[(out_offsets > 0) & (lengths > 0)].astype(np.int64),
        )

    def episode(self, index: int) -> TokenSequence:
        """A whole episode (row) as the tokenizer produced it."""
        return self.read(int(self.episode_tokens[index]), int(self.episode_tokens[index + 1]))
