"""Image patches stored as their distinct planes: each (S, S) channel once per sequence.

An Atari observation is a stack of the last four frames, so each frame comes back in the next
three stacks one channel further along, and a game's still background repeats patch after patch:
on Pong's frames most of a patch's channels equal a channel already stored. A token cache keeps
every sequence's distinct planes once and, for each patch, the index of each of its channels'
plane; reading gathers the planes back into (N, C, S, S) patches, the same bytes as before.
"""

from __future__ import annotations

import numpy as np

PLANE_INDEX_DTYPE = np.uint32
"""Plane indices of a cache: 4 bytes a channel (a patch of 4 x 16 x 16 takes 1,024 bytes)."""

_VERIFY_CHUNK = 1 << 17

# Odd 64-bit multipliers of the planes' hash: a fixed draw, so a cache's layout does not depend
# on the process that wrote it. Equal planes always hash equal; planes that collide are told
# apart by comparing their bytes, so the hash only decides how much is shared, never what is read.
_MULTIPLIERS = np.random.default_rng(0x9A70).integers(0, 2**63, size=4096, dtype=np.uint64) | 1


def _plane_hashes(planes: np.ndarray) -> np.ndarray:
    """(Q,) uint64 hash of each row of a (Q, B) uint8 array."""
    width = planes.shape[1]
    if width % 8:
        planes = np.pad(planes, ((0, 0), (0, 8 - width % 8)))
    words = np.ascontiguousarray(planes).view(np.uint64)
    multipliers = np.resize(_MULTIPLIERS, words.shape[1])
    hashes = np.zeros(len(words), np.uint64)
    for start in range(0, len(words), _VERIFY_CHUNK):
        chunk = words[start : start + _VERIFY_CHUNK]
        # Wrapping uint64 arithmetic, then one xor-shift so the sum's high bits reach the low ones.
        mixed = (chunk * multipliers).sum(axis=1, dtype=np.uint64)
        hashes[start : start + _VERIFY_CHUNK] = mixed ^ (mixed >> np.uint64(29))
    return hashes


def unique_planes(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (N, C, S, S) uint8 patches into (Q, S, S) distinct planes and (N, C) plane indices.

    `planes[index]` gives the patches back exactly. Planes are kept in the order they first
    appear. Raises `ValueError` unless the patches are a 4-dimensional uint8 array.
    """
    if not isinstance(patches, np.ndarray) or patches.dtype != np.uint8 or patches.ndim != 4:
        got = getattr(patches, "dtype", type(patches).__name__)
        shape = getattr(patches, "shape", None)
        raise ValueError(f"unique_planes: patches must be uint8 (N, C, S, S), got {got} {shape}")
    n, channels, rows, cols = patches.shape
    flat = np.ascontiguousarray(patches).reshape(n * channels, rows * cols)
    if len(flat) == 0:
        return np.zeros((0, rows, cols), np.uint8), np.zeros((n, channels), PLANE_INDEX_DTYPE)
    _, first, inverse = np.unique(_plane_hashes(flat), return_index=True, return_inverse=True)
    representative = first[inverse.reshape(-1)]
    for start in range(0, len(flat), _VERIFY_CHUNK):
        stop = start + _VERIFY_CHUNK
        differs = np.any(flat[start:stop] != flat[representative[start:stop]], axis=1)
        # A plane that only shares its hash keeps its own copy.
        representative[start:stop][differs] = np.flatnonzero(differs) + start
    kept = np.unique(representative)
    index = np.searchsorted(kept, representative).astype(PLANE_INDEX_DTYPE)
    return flat[kept].reshape(-1, rows, cols), index.reshape(n, channels)


def gather_patches(planes: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(N, C, S, S) uint8 patches from (Q, S, S) planes (a memmap is fine) and (N, C) indices."""
    index = np.asarray(index, dtype=np.int64)
    if len(index) == 0:
        return np.zeros((0, index.shape[1], *planes.shape[1:]), np.uint8)
    return np.asarray(planes[index.reshape(-1)]).reshape(*index.shape, *planes.shape[1:])
