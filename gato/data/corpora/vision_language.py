"""Procedural captioning and visual question answering, and loaders for caption datasets.

Scenes. A scene is a `grid` x `grid` board (3 x 3 by default) holding one to three objects, each in
its own cell. An object has a shape (square, circle, triangle, diamond, cross), a colour (red,
green, blue, yellow, purple, white), a size (small: 7-9 px, large: 11-14 px) and a position (the
cell: "top left", "top", ..., "bottom right"). Within a scene shapes are distinct and colours are
distinct, so "the circle" and "the red object" always name exactly one object. Images are
48 x 48 RGB uint8 by default: each cell is one 16 x 16 patch, so a scene is 9 patches and a
5-pair sequence stays under ~350 tokens; objects sit at a random offset inside their cell, their
colours vary by +-20 per channel and the background is a random dark grey with pixel noise, so
no caption can be read off exact pixel values. Rendering is aliased (hard masks): cheap, exact,
and small shapes stay distinguishable.

Captions. One canonical caption per scene, so exact match is a meaningful metric. Objects are
listed in raster order of their cells (top row first, left to right), then each consecutive pair
is related:

    a large red circle at the top left and a small blue square at the centre; the circle is
    above and left of the square.

Held-out split. Some colour-shape pairs (`HELD_OUT_PAIRS`, one per colour) never occur in the
`train` and `validation` splits, neither in images nor in any text; every `heldout` scene holds
at least one of them, and its VQA question is about that object. `validation` has the training
distribution (new scenes); `heldout` measures composition of seen attributes into unseen pairs.

Single objects. `captions-single` holds scenes of one object each, captioned the same way ("a
small red circle at the top left."): a curriculum's first lesson. Trained on the full scenes
from the start, the model names no colour or shape better than chance for its first ~1,000
steps, even of scenes with one object; on single objects first, it reads colour within 250 steps
and then finds each object of the full scenes within a few hundred more (docs/captions.md).

VQA. One question per scene, answered in a word or a short phrase ("red", "top left", "two",
"the blue square", "nothing"). Rows carry a `question` column next to the `images` and `text`
(the answer) columns of the JAT caption schema; the tokenizer makes the question context (no
loss) and the answer the target. Rows without a `question` column (JAT's single-`text`
convention, where the question is part of the text) load through the same code as captions.

Every scene is a pure function of (seed, split, row index): datasets are reproducible and a
larger build extends a smaller one.

CLI: ``python -m gato.data.corpora.vision_language --out data/cache/vision_language``
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np

from gato.data.io import load_rows, save_dataset, saved_description
from gato.files import cache_dir

DEFAULT_OUTPUT = cache_dir() / "vision_language"
CAPTIONS_PATH = DEFAULT_OUTPUT / "captions"
CAPTIONS_SINGLE_PATH = DEFAULT_OUTPUT / "captions-single"
VQA_PATH = DEFAULT_OUTPUT / "vqa"
BUILD_COMMAND = "python -m gato.data.corpora.vision_language"

SHAPES = ("square", "circle", "triangle", "diamond", "cross")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 200),
    "white": (235, 235, 235),
}
SIZES = ("small", "large")
HELD_OUT_PAIRS = (
    ("red", "triangle"),
    ("green", "cross"),
    ("blue", "circle"),
    ("yellow", "square"),
    ("purple", "diamond"),
    ("white", "triangle"),
)
"""Colour-shape pairs absent from train and validation. One per colour, and every shape keeps at
least three training colours, so each attribute is well seen on its own."""
TASKS = ("captions", "captions-single", "vqa")
"""The procedural datasets: captions of scenes of one to three objects, captions of scenes of one
object (a curriculum's first lesson: with one object in view, what to read needs no finding),
and one question per scene."""
_STREAMS = {"captions": 0, "vqa": 1, "captions-single": 2}
SPLITS = ("train", "validation", "heldout")
_SPLIT_CODES = {name: i for i, name in enumerate(SPLITS)}
_NUMBERS = ("one", "two", "three")
_RELATIONS = ("left of", "right of", "above", "below")
_REDRAWS = 50
"""Draws `draw_scene` tries for a one-column pair (about a fifth of natural draws have one, so
all 50 fail about once in 100,000 scenes)."""


@dataclass(frozen=True)
class SceneConfig:
    """How scenes look."""

    image_size: int = 48
    """Side of the square RGB image in pixels; a multiple of `grid` (48 = 3 x 3 patches of 16)."""
    grid: int = 3
    """Cells per side; one object per cell. Position words below assume 3."""
    max_objects: int = 3
    """Objects per scene are uniform in [1, max_objects]; at most the number of colours."""
    small_sizes: tuple[int, int] = (7, 9)
    """Inclusive pixel range of a small object's side."""
    large_sizes: tuple[int, int] = (11, 14)
    """Inclusive pixel range of a large object's side; must fit a cell."""
    colour_jitter: int = 20
    """Each object's colour moves by up to this much per channel."""
    background: tuple[int, int] = (15, 60)
    """Inclusive range of the background's grey level."""
    noise: int = 6
    """Per-pixel background noise amplitude (uniform +-noise)."""
    held_out_pairs: tuple[tuple[str, str], ...] = HELD_OUT_PAIRS
    """Colour-shape pairs reserved for the heldout split."""
    column_pair_redraw: float = 0.0
    """Captions' train split only: the probability that a scene of two or more objects whose
    consecutive objects never share a column is drawn again until a pair does (up to
    `_REDRAWS` draws). Such a pair is related by "above" alone, a third of the "above" phrases
    in the natural draw and the phrase the model learns last; at 0.5 it is three in five.
    Validation and heldout keep the natural draw that the scores measure. 0 (the natural draw)
    by measurement: in the main job, 0.5 moved the model to the new majority phrase without
    teaching it to read the columns (docs/captions.md, "One-column pairs drawn more often")."""

    def __post_init__(self) -> None:
        if self.grid != 3:
            raise ValueError(
                f"SceneConfig.grid must be 3 (position words are 3 x 3), got {self.grid}"
            )
        if self.image_size % self.grid:
            raise ValueError(
                f"SceneConfig.image_size={self.image_size} must be a multiple of grid={self.grid}"
            )
        if not 1 <= self.max_objects <= min(len(COLOURS), len(SHAPES), self.grid**2):
            raise ValueError(f"SceneConfig.max_objects must be in [1, 5], got {self.max_objects}")
        if self.large_sizes[1] > self.cell:
            raise ValueError(
                f"large objects ({self.large_sizes[1]} px) must fit a {self.cell} px cell"
            )
        if not 0.0 <= self.column_pair_redraw <= 1.0:
            raise ValueError(
                f"SceneConfig.column_pair_redraw must be in [0, 1], got {self.column_pair_redraw}"
            )
        for colour, shape in self.held_out_pairs:
            if colour not in COLOURS or shape not in SHAPES:
                raise ValueError(
                    f"held-out pair ({colour!r}, {shape!r}) names an unknown attribute"
                )

    @property
    def cell(self) -> int:
        """Side of one cell in pixels."""
        return self.image_size // self.grid


@dataclass(frozen=True)
class SceneObject:
    """One object: attributes and its cell (row, column) on the grid."""

    shape: str
    colour: str
    size: str
    row: int
    col: int

    @property
    def position(self) -> str:
        return position_name(self.row, self.col)

    @property
    def name(self) -> str:
        """'red circle': unique within a scene."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """Objects in raster order of their cells (the canonical order of captions)."""

    objects: tuple[SceneObject, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.objects, key=lambda o: (o.row, o.col)))
        object.__setattr__(self, "objects", ordered)


@dataclass(frozen=True)
class BuildSizes:
    """Rows per split of each built dataset."""

    train: int = 20000
    """Training rows."""
    validation: int = 1000
    """Validation rows (the training colour-shape pairs)."""
    heldout: int = 1000
    """Held-out rows (each scene holds a colour-shape pair reserved from training)."""

    def items(self) -> list[tuple[str, int]]:
        return [("train", self.train), ("validation", self.validation), ("heldout", self.heldout)]


# ---------------------------------------------------------------------------------------------
# Scenes, captions, questions
# ---------------------------------------------------------------------------------------------


def position_name(row: int, col: int) -> str:
    """Cell (row, col) of the 3 x 3 grid -> 'top left', 'top', ..., 'centre', 'bottom right'."""
    vertical = ("top", "", "bottom")[row]
    horizontal = ("left", "", "right")[col]
    return " ".join(w for w in (vertical, horizontal) if w) or "centre"


def allowed_pairs(split: str, config: SceneConfig) -> list[tuple[str, str]]:
    """Colour-shape pairs a split may draw from (heldout: any, with at least one held out)."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    held = set(config.held_out_pairs)
    every = [(c, s) for c in COLOURS for s in SHAPES]
    return every if split == "heldout" else [p for p in every if p not in held]


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one row: a pure function of (seed, split, index)."""
    return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def sample_scene(
    rng: np.random.Generator, split: str, config: SceneConfig = SceneConfig()
) -> Scene:
    """Draw objects with distinct shapes, colours and cells; a heldout scene has a held-out pair."""
    count = int(rng.integers(1, config.max_objects + 1))
    pool = allowed_pairs(split, config)
    chosen: list[tuple[str, str]] = []
    if split == "heldout":
        held = config.held_out_pairs
        chosen.append(held[int(rng.integers(len(held)))])
    while len(chosen) < count:
        used_c = {c for c, _ in chosen}
        used_s = {s for _, s in chosen}
        options = [p for p in pool if p[0] not in used_c and p[1] not in used_s]
        chosen.append(options[int(rng.integers(len(options)))])
    cells = rng.choice(config.grid**2, size=count, replace=False)
    sizes = rng.integers(0, 2, size=count)
    objects = tuple(
        SceneObject(shape, colour, SIZES[int(z)], int(cell) // config.grid, int(cell) % config.grid)
        for (colour, shape), cell, z in zip(chosen, cells, sizes, strict=True)
    )
    return Scene(objects)


def has_column_pair(scene: Scene) -> bool:
    """Whether two consecutive objects (raster order) share a column: related by "above" alone."""
    return any(a.col == b.col for a, b in zip(scene.objects, scene.objects[1:], strict=False))


def draw_scene(
    rng: np.random.Generator, split: str, config: SceneConfig = SceneConfig(), redraw: float = 0.0
) -> Scene:
    """`sample_scene`, then with probability `redraw` a scene of several objects without a
    one-column pair is drawn again (from the same generator) until it has one."""
    scene = sample_scene(rng, split, config)
    if redraw <= 0.0:
        return scene  # no draw spent: the natural rows stay what they were
    if len(scene.objects) > 1 and not has_column_pair(scene) and rng.random() < redraw:
        for _ in range(_REDRAWS):
            candidate = sample_scene(rng, split, config)
            if len(candidate.objects) > 1 and has_column_pair(candidate):
                return candidate
    return scene


def relation(a: SceneObject, b: SceneObject) -> str:
    """Where `a` is relative to `b` ('left of', 'above', 'above and right of', ...)."""
    vertical = "above" if a.row < b.row else "below" if a.row > b.row else ""
    horizontal = "left of" if a.col < b.col else "right of" if a.col > b.col else ""
    if vertical and horizontal:
        return f"{vertical} and {horizontal}"
    return vertical or horizontal


def caption(scene: Scene) -> str:
    """The one canonical caption: objects in raster order, then consecutive pairs related."""
    phrases = [f"a {o.size} {o.colour} {o.shape} at the {o.position}" for o in scene.objects]
    if len(phrases) > 1:
        listing = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    else:
        listing = phrases[0]
    relations = [
        f"the {a.shape} is {relation(a, b)} the {b.shape}"
        for a, b in zip(scene.objects, scene.objects[1:], strict=False)
    ]
    return listing + ("; " + " and ".join(relations) if relations else "") + "."


def _related(scene: Scene, target: SceneObject, kind: str) -> list[SceneObject]:
    """Objects standing `kind` ('left of', ...) the target, in raster order."""
    tests = {
        "left of": lambda o: o.col < target.col,
        "right of": lambda o: o.col > target.col,
        "above": lambda o: o.row < target.row,
        "below": lambda o: o.row > target.row,
    }
    return [o for o in scene.objects if o is not target and tests[kind](o)]


def sample_question(
    scene: Scene, rng: np.random.Generator, split: str, config: SceneConfig = SceneConfig()
) -> tuple[str, str]:
    """One (question, answer) about the scene.

    Types, drawn uniformly: count, colour of a shape, shape of a colour, size, position, existence
    (yes/no, half each), relation ('what is left of the circle?' -> 'the red square' or 'nothing').
    In the heldout split the question is about a held-out object and counting is left out, since
    it tests nothing compositional; in the other splits, absent objects asked about are training
    pairs, so no held-out pair appears in their text.
    """
    held = set(config.held_out_pairs)
    if split == "heldout":
        focus_pool = [o for o in scene.objects if (o.colour, o.shape) in held]
        kinds = ("colour", "shape", "size", "where", "exists", "relation")
    else:
        focus_pool = list(scene.objects)
        kinds = ("count", "colour", "shape", "size", "where", "exists", "relation")
    kind = kinds[int(rng.integers(len(kinds)))]
    focus = focus_pool[int(rng.integers(len(focus_pool)))]
    if kind == "count":
        return "how many objects are there?", _NUMBERS[len(scene.objects) - 1]
    if kind == "colour":
        return f"what colour is the {focus.shape}?", focus.colour
    if kind == "shape":
        return f"what shape is the {focus.colour} object?", focus.shape
    if kind == "size":
        return f"what size is the {focus.name}?", focus.size
    if kind == "where":
        return f"where is the {focus.name}?", focus.position
    if kind == "exists":
        if rng.integers(2):
            return f"is there a {focus.name}?", "yes"
        present = {(o.colour, o.shape) for o in scene.objects}
        pool = sorted(held) if split == "heldout" else allowed_pairs(split, config)
        absent = [p for p in pool if p not in present]
        colour, shape = absent[int(rng.integers(len(absent)))]
        return f"is there a {colour} {shape}?", "no"
    rel = _RELATIONS[int(rng.integers(len(_RELATIONS)))]
    found = _related(scene, focus, rel)
    answer = " and ".join(f"the {o.name}" for o in found) or "nothing"
    return f"what is {rel} the {focus.shape}?", answer


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def shape_mask(shape: str, side: int) -> np.ndarray:
    """(side, side) bool mask of a shape filling its box."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5
    c, r = side / 2.0, side / 2.0
    if shape == "square":
        return np.ones((side, side), dtype=bool)
    if shape == "circle":
        return (x - c) ** 2 + (y - c) ** 2 <= r**2
    if shape == "triangle":  # apex up: half-width grows linearly from the top row
        return np.abs(x - c) <= y / 2.0
    if shape == "diamond":
        return np.abs(x - c) + np.abs(y - c) <= r
    if shape == "cross":
        arm = max(1.0, side / 6.0)
        return (np.abs(x - c) <= arm) | (np.abs(y - c) <= arm)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


_MASKS: dict[tuple[str, int], np.ndarray] = {}


def _mask(shape: str, side: int) -> np.ndarray:
    key = (shape, side)
    if key not in _MASKS:
        _MASKS[key] = shape_mask(shape, side)
    return _MASKS[key]


def render_scene(
    scene: Scene, rng: np.random.Generator, config: SceneConfig = SceneConfig()
) -> np.ndarray:
    """Scene -> (H, W, 3) uint8 image: noisy grey background, one object per cell."""
    n = config.image_size
    grey = int(rng.integers(config.background[0], config.background[1] + 1))
    noise = rng.integers(-config.noise, config.noise + 1, size=(n, n, 1))
    image = np.clip(grey + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)
    cell = config.cell
    for obj in scene.objects:
        lo, hi = config.small_sizes if obj.size == "small" else config.large_sizes
        side = int(rng.integers(lo, hi + 1))
        dy, dx = (int(v) for v in rng.integers(0, cell - side + 1, size=2))
        top, left = obj.row * cell + dy, obj.col * cell + dx
        jitter = rng.integers(-config.colour_jitter, config.colour_jitter + 1, size=3)
        colour = np.clip(np.asarray(COLOURS[obj.colour]) + jitter, 0, 255).astype(np.uint8)
        image[top : top + side, left : left + side][_mask(obj.shape, side)] = colour
    return image


def generate_scenes(
    task: str, split: str, count: int, seed: int = 0, config: SceneConfig = SceneConfig()
) -> Iterator[tuple[Scene, np.ndarray, str | None, str]]:
    """(scene, image, question or None, text) of each row of a dataset of `TASKS`: the rows of
    `generate_rows` with the scene they were drawn from."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "captions-single":
        config = replace(config, max_objects=1)
    # Each dataset has its own stream of scenes, so no two hold the same images.
    stream = seed + _STREAMS[task] * (1 << 20)
    redraw = config.column_pair_redraw if (task, split) == ("captions", "train") else 0.0
    for index in range(count):
        rng = scene_rng(stream, split, index)
        scene = draw_scene(rng, split, config, redraw)
        image = render_scene(scene, rng, config)
        if task != "vqa":
            yield scene, image, None, caption(scene)
        else:
            question, answer = sample_question(scene, rng, split, config)
            yield scene, image, question, answer


def generate_rows(
    task: str, split: str, count: int, seed: int = 0, config: SceneConfig = SceneConfig()
) -> Iterator[dict[str, Any]]:
    """Rows of a captions ('images', 'text') or the vqa ('images', 'question', 'text') dataset."""
    for _, image, question, text in generate_scenes(task, split, count, seed, config):
        if question is None:
            yield {"images": image, "text": text}
        else:
            yield {"images": image, "question": question, "text": text}


def _encode_png(image: np.ndarray) -> dict[str, Any]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return {"bytes": buffer.getvalue(), "path": None}


def build_record(task: str, seed: int, config: SceneConfig) -> dict[str, Any]:
    """What a built dataset's info records: the scenes' task, seed and settings (JSON types)."""
    return {"scenes": task, "seed": seed, "config": json.loads(json.dumps(asdict(config)))}


def recorded_build(path: str | Path, split: str = "train") -> dict[str, Any] | None:
    """The `build_record` a dataset folder's split was built with; None when it has none (not
    built here, or built before datasets recorded it) or the folder holds no such split."""
    record = saved_description(Path(path) / split)
    return record if record is not None and "scenes" in record else None


def build_dataset(
    task: str,
    out: str | Path,
    sizes: BuildSizes = BuildSizes(),
    seed: int = 0,
    config: SceneConfig = SceneConfig(),
) -> datasets.DatasetDict:
    """Generate every split of `task` (one of `TASKS`) and save it atomically at `out`."""
    columns = {"images": datasets.Image(), "text": datasets.Value("string")}
    if task == "vqa":
        columns = {"images": datasets.Image(), "question": datasets.Value("string"), **columns}
        columns = {k: columns[k] for k in ("images", "question", "text")}
    features = datasets.Features(columns)
    splits = {}
    for split, count in sizes.items():
        rows = list(generate_rows(task, split, count, seed, config))
        table = {name: [r[name] for r in rows] for name in features}
        # PNG-encode here (fast settings) rather than letting datasets do it image by image.
        table["images"] = [_encode_png(image) for image in table["images"]]
        splits[split] = datasets.Dataset.from_dict(table, features=features)
        splits[split].info.description = json.dumps(build_record(task, seed, config))
    dataset = datasets.DatasetDict(splits)
    save_dataset(dataset, out)
    return dataset


# ---------------------------------------------------------------------------------------------
# Loading caption datasets: ours, JAT's, any with `images` + `text`
# ---------------------------------------------------------------------------------------------


@dataclass
class CaptionExample:
    """One decoded row: image (H, W, 3) uint8, target text, optional question (VQA)."""

    image: np.ndarray
    text: str
    question: str | None = None
    index: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def load_captions(
    source: str | Path = CAPTIONS_PATH, split: str = "train", name: str | None = None
) -> datasets.Dataset:
    """One split of an image-text dataset (`images` + `text`, optional `question`).

    `source` is a folder written by `save_dataset`, Parquet files, or a hub id (with `name` the
    configuration, e.g. a JAT captioning subset). Images are left undecoded so that
    `iter_captions` can name a row whose image is broken; a missing column is a `ValueError`.
    """
    if Path(source).resolve() in (CAPTIONS_PATH, VQA_PATH) and not Path(source).exists():
        raise FileNotFoundError(
            f"{source}: no caption dataset there; build the procedural ones with `{BUILD_COMMAND}`"
        )
    dataset = load_rows(source, split, name=name, required_columns=("images", "text"))
    if isinstance(dataset.features["images"], datasets.Image):
        dataset = dataset.cast_column("images", datasets.Image(decode=False))
    return dataset


def decode_image(value: Any, where: str) -> np.ndarray:
    """A stored image (PNG/JPEG bytes, a {bytes, path} dict, a PIL image or an array) -> (H, W, 3).

    Grey, palette and alpha images become RGB. A value that does not decode raises `ValueError`
    naming `where` (source, split and row), never a bare decoder error.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(value, dict):
            data, file = value.get("bytes"), value.get("path")
            if data is None and file is None:
                raise ValueError("the image entry has neither bytes nor a path")
            value = Image.open(io.BytesIO(data) if data is not None else file)
        elif isinstance(value, bytes | bytearray):
            value = Image.open(io.BytesIO(value))
        if isinstance(value, Image.Image):
            value.load()
            return np.asarray(value.convert("RGB"))
        array = np.asarray(value)
        if array.ndim == 2:
            array = array[..., None].repeat(3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected (H, W, C) pixels, got shape {array.shape}")
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
                raise ValueError(f"pixels must be uint8 values, got dtype {array.dtype}")
            array = array.astype(np.uint8)
        return array[..., :3] if array.shape[2] >= 3 else array.repeat(3, axis=2)
    except (UnidentifiedImageError, OSError, ValueError, TypeError, SyntaxError) as err:
        raise ValueError(f"{where}: the image cannot be decoded ({err})") from None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (size, size, 3) with bilinear filtering (PIL)."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def iter_captions(
    dataset: datasets.Dataset, source: str = "captions", image_size: int | None = None
) -> Iterator[CaptionExample]:
    """Decode each row; errors name the source and the row. `image_size` squares every image."""
    has_question = "question" in dataset.column_names
    for index, row in enumerate(dataset):
        where = f"{source} row {index}"
        text = row["text"]
        if not isinstance(text, str):
            raise ValueError(f"{where}: `text` must be a string, got {type(text).__name__}")
        question = row["question"] if has_question else None
        if question is not None and not isinstance(question, str):
            raise ValueError(f"{where}: `question` must be a string, got {type(question).__name__}")
        image = decode_image(row["images"], where)
        if image_size is not None:
            image = resize_image(image, image_size)
        yield CaptionExample(image=image, text=text, question=question, index=index)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


@dataclass
class BuildOptions:
    """What to build and where; the row counts are `BuildSizes`'."""

    out: Path = DEFAULT_OUTPUT
    """Output folder (one dataset folder per task inside)."""
    seed: int = 0
    """Seed of the scenes."""
    image_size: int = SceneConfig.image_size
    """Side of the square images, in pixels."""
    column_pair_redraw: float = SceneConfig.column_pair_redraw
    """Captions' train split: how often a scene without a one-column pair is drawn again
    (`SceneConfig.column_pair_redraw`; 0 keeps the natural draw). The main job rebuilds the
    default folder with the default, so build other settings elsewhere (`--out`) and name
    that folder in a recipe's `path`."""
    tasks: list[Literal["captions", "captions-single", "vqa"]] = field(
        default_factory=lambda: list(TASKS)
    )
    """Datasets to build."""


def main(argv: Sequence[str] | None = None) -> None:
    from gato.cli import parse

    args, sizes = parse(
        (BuildOptions, BuildSizes),
        argv,
        prog="python -m gato.data.corpora.vision_language",
        description=__doc__.split("\n\n")[0],
    )
    config = SceneConfig(image_size=args.image_size, column_pair_redraw=args.column_pair_redraw)
    for task in args.tasks:
        start = time.perf_counter()
        dataset = build_dataset(task, args.out / task, sizes, args.seed, config)
        counts = ", ".join(f"{k} {len(v):,d}" for k, v in dataset.items())
        print(f"{task}: {counts} rows -> {args.out / task} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
