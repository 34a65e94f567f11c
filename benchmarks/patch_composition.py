"""Does a patch encoder read shape apart from colour? Each encoder trained on one patch alone.

    python benchmarks/patch_composition.py [--encoders resnet mono_resnet+linear ...]
        [--steps 50 100 200 400 1000] [--seeds 0 1]

The procedural captions hold out some colour-shape pairs (a red triangle is never seen in
training). A caption of such an object is right only if the model's reading of shape does not
depend on the colour it came in. This isolates the first stage, the patch encoder
(`GatoConfig.patch_encoder`): the object's patch of a `captions-single` scene goes through the
encoder's content path (`GatoEmbedding.embed_patch_content`, as in the model) and two linear
heads, one for the shape and one for the colour, trained together on the training pairs (Adam at
the tiny preset's rate, 64 patches a step). Scored on new patches of the training pairs (`seen`)
and on patches of the held-out pairs (`unseen`), after each of `--steps`. An encoder whose shape
reading generalises scores the unseen pairs' shapes as well as the seen ones'; one that ties
shape to colour does not. Prints one row per (encoder, step), means over `--seeds`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gato.data.corpora import vision_language as vl  # noqa: E402
from gato.modeling.config import PATCH_ENCODERS, GatoConfig  # noqa: E402
from gato.modeling.embedding import GatoEmbedding  # noqa: E402
from gato.training.config import TrainConfig  # noqa: E402

BATCH = 64


def object_patches(
    split: str, count: int, seed: int = 0, channels: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first `count` one-object scenes of `split` of `captions-single` (train and validation:
    the training pairs; heldout: the held-out ones) -> the object's patch, zero-padded to
    `channels` as the tokenizer pads RGB: uint8 (N, channels, P, P), shape ids (N,), colour ids
    (N,) (indices into `vl.SHAPES` and `vl.COLOURS`)."""
    if count < 1:
        raise ValueError(f"object_patches needs count >= 1, got {count}")
    cell, colours = vl.SceneConfig().cell, list(vl.COLOURS)
    pixels, shapes, hues = [], [], []
    for scene, image, _, _ in vl.generate_scenes("captions-single", split, count, seed):
        (obj,) = scene.objects
        patch = image[obj.row * cell : (obj.row + 1) * cell, obj.col * cell : (obj.col + 1) * cell]
        pixels.append(patch.transpose(2, 0, 1))
        shapes.append(vl.SHAPES.index(obj.shape))
        hues.append(colours.index(obj.colour))
    array = np.stack(pixels)
    array = np.pad(array, [(0, 0), (0, channels - array.shape[1]), (0, 0), (0, 0)])
    return torch.from_numpy(array), torch.tensor(shapes), torch.tensor(hues)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).float().mean())


def train_encoder(
    encoder: str, steps: list[int], seed: int, train_rows: int, test_rows: int
) -> list[dict[str, float]]:
    """Train one encoder with its two heads; a row of accuracies after each of `steps`."""
    config = GatoConfig.from_preset("tiny", patch_encoder=encoder)
    channels = config.image_channels
    x, y_shape, y_colour = object_patches("train", train_rows, seed, channels)
    seen = object_patches("validation", test_rows, seed, channels)
    unseen = object_patches("heldout", test_rows, seed, channels)
    torch.manual_seed(seed)
    embedding = GatoEmbedding(config)
    shape_head = torch.nn.Linear(config.hidden_size, len(vl.SHAPES))
    colour_head = torch.nn.Linear(config.hidden_size, len(vl.COLOURS))
    parameters = [
        *embedding.patches.parameters(),
        *(embedding.patch_linear.parameters() if embedding.patch_linear is not None else []),
        *shape_head.parameters(),
        *colour_head.parameters(),
    ]
    optimizer = torch.optim.Adam(parameters, lr=TrainConfig.PRESET_LEARNING_RATES["tiny"])
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(1, max(steps) + 1):
        index = torch.from_numpy(rng.integers(0, train_rows, size=BATCH))
        z = embedding.embed_patch_content(x[index])
        loss = F.cross_entropy(shape_head(z), y_shape[index]) + F.cross_entropy(
            colour_head(z), y_colour[index]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in steps:
            row = {"step": step}
            with torch.no_grad():
                for name, (pixels, shapes, hues) in (("seen", seen), ("unseen", unseen)):
                    z = embedding.embed_patch_content(pixels)
                    row[f"shape {name}"] = accuracy(shape_head(z), shapes)
                    row[f"colour {name}"] = accuracy(colour_head(z), hues)
            rows.append(row)
    return rows


COLUMNS = ("shape seen", "shape unseen", "colour seen", "colour unseen")
SMALL_PATCH_ENCODERS = tuple(e for e in PATCH_ENCODERS if e != "nature")
"""The encoders of 16-pixel patches ("nature" embeds whole frames, patch_size 36 or more)."""


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=list(SMALL_PATCH_ENCODERS))
    parser.add_argument("--steps", nargs="+", type=int, default=[50, 100, 200, 400, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--train_rows", type=int, default=20_000)
    parser.add_argument("--test_rows", type=int, default=600)
    args = parser.parse_args(argv)
    unknown = [e for e in args.encoders if e not in SMALL_PATCH_ENCODERS]
    if unknown:
        parser.error(f"unknown encoders {unknown}; expected some of {SMALL_PATCH_ENCODERS}")
    if min(args.steps) < 1:
        parser.error(f"--steps must be positive, got {args.steps}")
    torch.set_num_threads(1)
    table = []
    print("| encoder | step | " + " | ".join(COLUMNS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |")
    for encoder in args.encoders:
        runs = [
            train_encoder(encoder, sorted(set(args.steps)), seed, args.train_rows, args.test_rows)
            for seed in args.seeds
        ]
        for rows in zip(*runs, strict=True):
            mean = {c: float(np.mean([r[c] for r in rows])) for c in COLUMNS}
            table.append({"encoder": encoder, "step": rows[0]["step"], **mean})
            cells = " | ".join(f"{100 * mean[c]:.1f}%" for c in COLUMNS)
            print(f"| {encoder} | {rows[0]['step']} | {cells} |", flush=True)
    return table


if __name__ == "__main__":
    main()
