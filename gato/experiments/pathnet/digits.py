"""The binary digit tasks of the supervised PathNet experiment, from scikit-learn's 8x8 digits.

A task "3v8" classifies digit 3 (label 1) against digit 8 (label 0); a task may name digit sets,
"02468v13579" (even, label 1, against odd). Each task's images are split once (a fixed split,
whatever the seed) into a training and a held-out set; with noise, the sets pathways are scored
on get one fixed salt-and-pepper copy each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["BinaryTask", "load_digits_task", "parse_pair", "salt_and_pepper"]


@dataclass(frozen=True)
class BinaryTask:
    """One binary task's data: x (n, 64) (or (n, 1, 8, 8)) in [0, 1], y (n,) int64 in {0, 1}.

    With `noise` > 0, `train_x` stays clean (minibatches are corrupted afresh when drawn) and
    `train_eval_x` / `test_x` hold one fixed salt-and-pepper copy each, the sets pathways are
    scored on. Without noise `train_eval_x` is `train_x`.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    noise: float = 0.0
    train_eval_x: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.train_eval_x is None:
            object.__setattr__(self, "train_eval_x", self.train_x)

    def subset(self, n: int) -> BinaryTask:
        """The same task with only its first `n` training images (n = 0: all of them)."""
        if n <= 0 or n >= len(self.train_y):
            return self
        return BinaryTask(
            self.name,
            self.train_x[:n],
            self.train_y[:n],
            self.test_x,
            self.test_y,
            self.noise,
            self.train_eval_x[:n],
        )


def salt_and_pepper(x: torch.Tensor, probability: float, rng: np.random.Generator) -> torch.Tensor:
    """x with each element, with `probability`, replaced by 0 or 1 (even odds)."""
    if probability <= 0:
        return x
    hit = torch.from_numpy(rng.random(tuple(x.shape)) < probability)
    value = torch.from_numpy(rng.integers(0, 2, size=tuple(x.shape))).to(x.dtype)
    return torch.where(hit, value, x)


def _parse_task(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """'3v8' -> ((3,), (8,)); '02468v13579' -> ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9)): the digits
    labelled 1, then those labelled 0, each sorted."""
    parts = name.split("v")
    if len(parts) != 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(
            f"unknown task {name!r}: expected '<digits>v<digits>', e.g. '3v8' or '02468v13579'"
        )
    sets = []
    for part in parts:
        digits = [int(c) for c in part]
        if len(set(digits)) != len(digits):
            raise ValueError(f"task {name!r} repeats a digit in {part!r}")
        sets.append(tuple(sorted(digits)))
    positive, negative = sets
    shared = sorted(set(positive) & set(negative))
    if shared:
        raise ValueError(f"task {name!r} puts digit(s) {shared} on both sides")
    return positive, negative


def parse_pair(pair: str) -> tuple[str, str]:
    """'6v8:3v8' -> ('6v8', '3v8'), checking both tasks."""
    parts = pair.split(":")
    if len(parts) != 2:
        raise ValueError(f"task pair {pair!r} must be 'A:B', e.g. '6v8:3v8'")
    for task in parts:
        _parse_task(task)
    return parts[0], parts[1]


def load_digits_task(
    name: str, test_fraction: float = 0.25, kind: str = "linear", noise: float = 0.0
) -> BinaryTask:
    """The images of the digits of task `name` (label 1: the digits before the "v"), split once
    (fixed permutation); with `noise`, fixed salt-and-pepper copies of both sets to score on
    (seeded by the task)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "the supervised PathNet experiment reads scikit-learn's bundled digits: "
            "pip install scikit-learn"
        ) from err
    positive, negative = _parse_task(name)
    digits = load_digits()
    keep = np.isin(digits.target, positive + negative)
    x = digits.data[keep].astype(np.float32) / 16.0  # pixel counts 0..16 -> [0, 1]
    y = np.isin(digits.target[keep], positive).astype(np.int64)
    order = np.random.default_rng(12345).permutation(len(y))
    x, y = x[order], y[order]
    n_test = int(round(test_fraction * len(y)))
    if kind == "conv":
        x = x.reshape(-1, 1, 8, 8)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    # [*positive, *negative, 777] is [p, n, 777] for a single-digit task: the seed those tasks
    # always had, so their noisy copies (and every earlier run) stay the same. Two tasks that
    # share it ("02v4", "0v24") hold the same images in the same order, so the same noisy copy
    # only relabels them.
    noisy = salt_and_pepper(tx, noise, np.random.default_rng([*positive, *negative, 777]))
    return BinaryTask(
        name, tx[n_test:], ty[n_test:], noisy[:n_test], ty[:n_test], noise, noisy[n_test:]
    )
