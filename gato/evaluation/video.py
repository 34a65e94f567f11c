"""Episode videos people can open: MP4 (H.264 through imageio-ffmpeg) by default, GIF as an option.

Several episodes of a task play side by side in one grid, each tile labelled with its return; an
episode that ends early holds its last frame, dimmed, until the longest one ends. Long videos
keep every k-th frame so that a file stays under `MAX_FRAMES` frames. Files are written to a
temporary name in the same folder and renamed: a crash leaves the previous video.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MAX_FRAMES", "grid_frames", "label_frame", "write_episodes_video", "write_video"]

MAX_FRAMES = 600
"""Most frames in one video; longer episodes are subsampled evenly."""
_BLOCK = 16  # H.264 encoders want sides that are multiples of 16


def _rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ValueError(f"a video frame must be (H, W), (H, W, 1|3|4), got {frame.shape}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


def label_frame(frame: np.ndarray, text: str) -> np.ndarray:
    """(H, W, 3) uint8 with `text` written at the top left on a dark band."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(_rgb(frame))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((2, 1), text)
    draw.rectangle((0, 0, right + 2, bottom + 2), fill=(0, 0, 0))
    draw.text((2, 1), text, fill=(255, 255, 255))
    return np.asarray(image)


def grid_frames(
    episodes: Sequence[Sequence[np.ndarray]], labels: Sequence[str] | None = None
) -> list[np.ndarray]:
    """Episodes' frames -> one frame sequence of a grid (about square, row-major).

    Args:
        episodes: E lists of (H, W, 3) uint8 frames (sizes may differ; tiles take the largest).
        labels: E texts written on each tile (e.g. its return), or None.

    Returns:
        T frames (rows * H, cols * W, 3), T the longest episode's length.
    """
    if not episodes or any(len(e) == 0 for e in episodes):
        raise ValueError("grid_frames: every episode needs at least one frame")
    if labels is not None and len(labels) != len(episodes):
        raise ValueError(f"grid_frames: {len(labels)} labels for {len(episodes)} episodes")
    cols = math.ceil(math.sqrt(len(episodes)))
    rows = math.ceil(len(episodes) / cols)
    h = max(_rgb(e[0]).shape[0] for e in episodes)
    w = max(_rgb(e[0]).shape[1] for e in episodes)
    length = max(len(e) for e in episodes)
    out = []
    for t in range(length):
        canvas = np.zeros((rows * h, cols * w, 3), np.uint8)
        for k, frames in enumerate(episodes):
            frame = _rgb(frames[min(t, len(frames) - 1)])
            if t >= len(frames):  # this episode is over: hold its last frame, dimmed
                frame = frame // 2
            if labels is not None:
                frame = label_frame(frame, labels[k])
            r, c = divmod(k, cols)
            canvas[r * h : r * h + frame.shape[0], c * w : c * w + frame.shape[1]] = frame
        out.append(canvas)
    return out


def _pad(frame: np.ndarray, block: int) -> np.ndarray:
    h, w = frame.shape[:2]
    ph, pw = (-h) % block, (-w) % block
    return np.pad(frame, ((0, ph), (0, pw), (0, 0))) if ph or pw else frame


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 20) -> Path:
    """Frames (H, W, 3) uint8 -> a video whose format follows the suffix: .mp4 (H.264,
    imageio-ffmpeg; sides padded to multiples of 16) or .gif (Pillow).

    Long episodes keep every k-th frame so that the file stays under `MAX_FRAMES` frames."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"write_video: {path}: the suffix must be .mp4 or .gif")
    if not frames:
        raise ValueError("write_video: no frames")
    if fps < 1:
        raise ValueError(f"write_video: fps must be positive, got {fps}")
    stride = max(1, math.ceil(len(frames) / MAX_FRAMES))
    chosen = [_rgb(f) for f in frames[::stride]]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        if suffix == ".mp4":
            _write_mp4(chosen, temporary, max(1, round(fps / stride)))
        else:
            _write_gif(chosen, temporary, max(20, int(1000 * stride / fps)))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _write_mp4(frames: list[np.ndarray], path: str, fps: int) -> None:
    import imageio.v2 as imageio

    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    writer = imageio.get_writer(
        path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
        macro_block_size=1,
    )  # fmt: skip
    try:
        for frame in frames:
            canvas = np.zeros((h, w, 3), np.uint8)
            canvas[: frame.shape[0], : frame.shape[1]] = frame
            writer.append_data(_pad(canvas, _BLOCK))
    finally:
        writer.close()


def _write_gif(frames: list[np.ndarray], path: str, duration_ms: int) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=0,
        optimize=False,
    )


def write_episodes_video(
    episodes: Sequence[Sequence[np.ndarray]],
    path: str | Path,
    labels: Sequence[str] | None = None,
    fps: int = 20,
) -> Path:
    """Several episodes in one grid video (see `grid_frames`), MP4 or GIF by `path`'s suffix."""
    return write_video(grid_frames(episodes, labels), path, fps)
