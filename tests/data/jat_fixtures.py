"""Small local copies of JAT's hub configs, written as JAT's own generation scripts write them.

Read from huggingface/jat (data/envs/*/create_*_dataset.py, data/conceptual_captions,
data/ok-vqa): every control config is one row per episode with `datasets.Sequence` features
(Atari: 84x84x4 frame stacks as RGBA PNG images, one row a whole game across lives; BabyAI: the
mission text and 148 discrete values; Meta-World: 39 floats and the raw 4-wide actions; MuJoCo:
the gymnasium v4 widths), captioning configs are `images` (RGB, longer side 352) + `text`, and
text configs are `text`. Each config has one empty episode (a row with no steps, or an empty
text), as the hub's data has.

The hub serves two layouts, both written here: the uploaded one,
`<config>/train-00000-of-00001-<hash>.parquet`, and the converted one,
`<config>/train/0000.parquet`.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import datasets
import numpy as np

JAT_CONFIGS: dict[str, str | None] = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "jat_configs.json").read_text()
)["configs"]
"""JAT's config name -> the environment (with version) that recorded it (None: text, images)."""

MUJOCO_V4_WIDTHS = {
    "mujoco-ant": (27, 8),
    "mujoco-doublependulum": (11, 1),
    "mujoco-halfcheetah": (17, 6),
    "mujoco-hopper": (11, 3),
    "mujoco-humanoid": (376, 17),
    "mujoco-pendulum": (4, 1),
    "mujoco-pusher": (23, 7),
    "mujoco-reacher": (11, 2),
    "mujoco-standup": (376, 17),
    "mujoco-swimmer": (8, 2),
    "mujoco-walker": (17, 6),
}
"""(observation, action) widths of the gymnasium v4 environments JAT recorded."""

_F32 = datasets.Value("float32")
_I64 = datasets.Value("int64")
FEATURES = {
    "atari": datasets.Features(
        {
            "image_observations": datasets.Sequence(datasets.Image()),
            "discrete_actions": datasets.Sequence(_I64),
            "rewards": datasets.Sequence(_F32),
        }
    ),
    "babyai": datasets.Features(
        {
            "text_observations": datasets.Sequence(datasets.Value("string")),
            "discrete_observations": datasets.Sequence(datasets.Sequence(_I64)),
            "discrete_actions": datasets.Sequence(_I64),
            "rewards": datasets.Sequence(_F32),
        }
    ),
    "continuous": datasets.Features(
        {
            "continuous_observations": datasets.Sequence(datasets.Sequence(_F32)),
            "continuous_actions": datasets.Sequence(datasets.Sequence(_F32)),
            "rewards": datasets.Sequence(_F32),
        }
    ),
    "captions": datasets.Features({"images": datasets.Image(), "text": datasets.Value("string")}),
    "text": datasets.Features({"text": datasets.Value("string")}),
}

LENGTHS = (6, 0, 4)
"""Steps of the fixture episodes: the second is empty."""


def family(config: str) -> str:
    """Which kind of rows a config holds."""
    if config.startswith(("metaworld-", "mujoco-")):
        return "continuous"
    if config.startswith(("atari-", "babyai-")):
        return config.split("-")[0]
    return "captions" if config in ("conceptual-captions", "ok-vqa") else "text"


def _image(rng: np.random.Generator, size: tuple[int, int], mode: str, fmt: str):
    from PIL import Image

    channels = {"RGBA": 4, "RGB": 3}[mode]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=fmt)
    return {"bytes": buffer.getvalue(), "path": None}


def config_rows(config: str, rng: np.random.Generator, lengths=LENGTHS) -> dict[str, list]:
    """Rows of one config as JAT's script for its family builds them."""
    kind = family(config)
    if kind == "atari":
        # One row per game across all its lives; frames are 84x84 grey, stacked by 4 in RGBA.
        return {
            "image_observations": [
                [_image(rng, (84, 84), "RGBA", "PNG") for _ in range(t)] for t in lengths
            ],
            "discrete_actions": [rng.integers(0, 18, t).tolist() for t in lengths],
            "rewards": [rng.choice([0.0, 1.0], t).tolist() for t in lengths],
        }
    if kind == "babyai":
        mission = "go to the red ball"
        return {
            "text_observations": [[mission] * t for t in lengths],
            "discrete_observations": [rng.integers(0, 11, (t, 148)).tolist() for t in lengths],
            "discrete_actions": [rng.integers(0, 7, t).tolist() for t in lengths],
            "rewards": [[0.0] * (t - 1) + [0.9] if t else [] for t in lengths],
        }
    if kind == "continuous":
        if config.startswith("metaworld-"):
            obs, act, scale = 39, 4, 20.0  # raw actions, e.g. -19.8 (JAT's README)
        else:
            (obs, act), scale = MUJOCO_V4_WIDTHS[config], 0.4
        return {
            "continuous_observations": [rng.normal(size=(t, obs)).tolist() for t in lengths],
            "continuous_actions": [rng.uniform(-scale, scale, (t, act)).tolist() for t in lengths],
            "rewards": [rng.normal(size=t).tolist() for t in lengths],
        }
    texts = {
        "ok-vqa": ["Q: What is the man holding? A: umbrella", "", "Q: Which sport? A: tennis"],
        "conceptual-captions": ["a dog runs on the beach", "", "a red car in the street"],
    }.get(config, ["The cat sat on the mat.", "", "Paris is the capital of France."])
    if kind == "text":
        return {"text": texts}
    sizes = [(352, 264), (200, 352), (352, 352)]  # longer side 352 (JAT's resize)
    fmt = "JPEG" if config == "ok-vqa" else "PNG"
    return {"images": [_image(rng, s, "RGB", fmt) for s in sizes], "text": texts}


def write_config(
    root: Path,
    config: str,
    layout: str = "converted",
    splits: tuple[str, ...] = ("train", "test"),
    shards: int = 1,
    seed: int = 0,
    rows: dict[str, list] | None = None,
    features: datasets.Features | None = None,
) -> Path:
    """Write `root/<config>/...` in the hub's `layout` ("converted" or "uploaded")."""
    folder = Path(root) / config
    features = features if features is not None else FEATURES[family(config)]
    for index, split in enumerate(splits):
        data = (
            rows if rows is not None else config_rows(config, np.random.default_rng(seed + index))
        )
        dataset = datasets.Dataset.from_dict(data, features=features)
        for shard in range(shards):
            part = dataset.shard(shards, shard, contiguous=True)
            if layout == "converted":
                file = folder / split / f"{shard:04d}.parquet"
            elif layout == "uploaded":
                digest = hashlib.sha1(f"{config}{split}{shard}".encode()).hexdigest()[:8]
                file = folder / f"{split}-{shard:05d}-of-{shards:05d}-{digest}.parquet"
            else:
                raise ValueError(f"layout must be 'converted' or 'uploaded', got {layout!r}")
            file.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(str(file))
    return folder


FAMILY_CONFIGS = (
    "atari-pong",
    "babyai-go-to-red-ball",
    "metaworld-assembly",
    "mujoco-humanoid",
    "mujoco-hopper",
    "conceptual-captions",
    "ok-vqa",
    "oscar",
)
"""One config of every JAT family (two MuJoCo: Humanoid's 376 width is the odd one)."""
