"""Pure numerics of the tokenizer: mu-law companding, uniform binning, image patches.

Numpy in, numpy out, no project state: each function is tested against a slow reference written
from the formula.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from gato.vocab import NUM_CONTINUOUS_BINS

MU_LAW_MU = 100.0
MU_LAW_M = 256.0
"""Gato's mu-law parameters (mu, M): the tokenizer's defaults, and what the model assumes when
it decodes an observation's bin back to its value (`gato.modeling.groups`)."""


def mu_law_encode(x: np.ndarray | float, mu: float = MU_LAW_MU, M: float = MU_LAW_M) -> np.ndarray:
    """Gato's companding F(x) = sgn(x) log(|x| mu + 1) / log(M mu + 1), clipped to [-1, 1].

    Values with |x| > M land outside [-1, 1] before the clip and are clipped, as in Gato.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.sign(x) * np.log1p(np.abs(x) * mu) / np.log1p(M * mu)
    return np.clip(y, -1.0, 1.0)


def mu_law_decode(y: np.ndarray | float, mu: float = MU_LAW_MU, M: float = MU_LAW_M) -> np.ndarray:
    """Inverse of `mu_law_encode` on [-1, 1]: x = sgn(y) ((M mu + 1)^|y| - 1) / mu."""
    y = np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0)
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(M * mu)) / mu


def continuous_to_bins(y: np.ndarray, num_bins: int = NUM_CONTINUOUS_BINS) -> np.ndarray:
    """Uniform bins over [-1, 1]: bin b holds [-1 + 2b/n, -1 + 2(b+1)/n); 1.0 goes to the last."""
    y = np.asarray(y, dtype=np.float64)
    bins = np.floor((y + 1.0) * (num_bins / 2.0)).astype(np.int64)
    return np.clip(bins, 0, num_bins - 1)


def bins_to_continuous(bins: np.ndarray, num_bins: int = NUM_CONTINUOUS_BINS) -> np.ndarray:
    """Centre of each bin in [-1, 1]: decoding error is at most half a bin (1 / num_bins)."""
    return (np.asarray(bins, dtype=np.float64) + 0.5) * (2.0 / num_bins) - 1.0


class Patches(NamedTuple):
    """Image patches in raster order.

    pixels: (N, C, P, P) uint8.
    intervals: (N, 4) int64 pixel [row_start, row_end, col_start, col_end) of each patch.
    image_size: (H, W) of the image the patches were cut from (after resizing).
    """

    pixels: np.ndarray
    intervals: np.ndarray
    image_size: tuple[int, int]


def _patch_multiple(side: int, patch_size: int) -> int:
    return max(patch_size, int(round(side / patch_size)) * patch_size)


def patch_grid(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """(rows, columns) of the patches the tokenizer cuts an image of `height` x `width` into,
    after resizing it to the nearest multiples of `patch_size` (`frames_to_patches`)."""
    if height < 1 or width < 1 or patch_size < 1:
        raise ValueError(
            f"patch_grid needs positive sides and patch size, got {height}x{width} at {patch_size}"
        )
    rows = _patch_multiple(height, patch_size) // patch_size
    return rows, _patch_multiple(width, patch_size) // patch_size


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (T, H, W, C) uint8 frames to (T, height, width, C).

    Bilinear for mild changes (84 -> 80 is a 5% shrink, where it matches area averaging and runs
    7x faster), area averaging when shrinking by more than 2x, where bilinear would alias.
    """
    import cv2

    t, h, w, c = frames.shape
    if (h, w) == (height, width):
        return frames
    shrink = min(height / h, width / w)
    interpolation = cv2.INTER_AREA if shrink < 0.5 else cv2.INTER_LINEAR
    out = np.empty((t, height, width, c), dtype=np.uint8)
    # cv2.resize takes at most 4 channels per call.
    for i in range(t):
        for k in range(0, c, 4):
            resized = cv2.resize(
                frames[i, :, :, k : k + 4], (width, height), interpolation=interpolation
            )
            out[i, :, :, k : k + 4] = resized.reshape(height, width, -1)
    return out


def frames_to_patches(frames: np.ndarray, patch_size: int, resize: bool) -> Patches:
    """(T, H, W, C) uint8 -> pixels (T, N, C, P, P), intervals (N, 4), image size."""
    _, h, w, c = frames.shape
    if h % patch_size or w % patch_size:
        if not resize:
            raise ValueError(
                f"image of size {h}x{w} is not a multiple of the patch size {patch_size}; "
                "pass resize=True to resize it to the nearest multiple"
            )
        h, w = _patch_multiple(h, patch_size), _patch_multiple(w, patch_size)
        frames = resize_frames(frames, h, w)
    t = frames.shape[0]
    rows, cols = h // patch_size, w // patch_size
    # (T, rows, P, cols, P, C) -> (T, rows, cols, C, P, P): raster order, channels first.
    pixels = frames.reshape(t, rows, patch_size, cols, patch_size, c).transpose(0, 1, 3, 5, 2, 4)
    pixels = pixels.reshape(t, rows * cols, c, patch_size, patch_size)
    r = np.repeat(np.arange(rows), cols) * patch_size
    k = np.tile(np.arange(cols), rows) * patch_size
    intervals = np.stack([r, r + patch_size, k, k + patch_size], axis=1).astype(np.int64)
    return Patches(pixels, intervals, (h, w))


def image_to_patches(image: np.ndarray, patch_size: int = 16, resize: bool = True) -> Patches:
    """Cut a uint8 (H, W, C) image (or (H, W)) into (N, C, P, P) patches in raster order.

    An image whose sides are not multiples of `patch_size` is resized to the nearest multiples
    (84x84 Atari frames become 80x80, 25 patches) when `resize` is True, else rejected.
    """
    image = check_image(image, "image")
    patches = frames_to_patches(image[None], patch_size, resize)
    return Patches(patches.pixels[0], patches.intervals, patches.image_size)


def normalize_patches(pixels: Any) -> Any:
    """uint8 pixels -> [-1, 1], then divided by sqrt(16) = 4, as Gato. Works on numpy or torch."""
    return (pixels / 255.0 * 2.0 - 1.0) / 4.0


def patch_position_bins(
    intervals: np.ndarray, image_size: tuple[int, int], num_bins: int = 128
) -> np.ndarray:
    """Pixel intervals (N, 4) -> [row_lo, row_hi, col_lo, col_hi) in `num_bins` position bins.

    The normalised interval [start / size, end / size) covers bins floor(start) .. ceil(end) - 1;
    the model samples an index inside it when training and takes its middle when evaluating.
    """
    h, w = image_size
    scale = np.array([h, h, w, w], dtype=np.float64)
    normalised = np.asarray(intervals, dtype=np.float64) / scale * num_bins
    lo = np.floor(normalised[:, [0, 2]])
    hi = np.ceil(normalised[:, [1, 3]])
    out = np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], axis=1).astype(np.int64)
    return np.clip(out, 0, num_bins)


def check_image(image: Any, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"{name}: images must be uint8, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"{name}: an image must be (H, W) or (H, W, C), got shape {array.shape}")
    return array
