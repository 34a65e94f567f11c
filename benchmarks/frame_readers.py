"""Which reader of Atari frame stacks leaves the behaviour clone's plateau soonest.

Every Pong clone spends its first thousands of steps at the entropy of the action frequencies
(docs/control_learning.md). This benchmark trains several frame readers side by side on one
task's episodes, each a network of (B, 84, 84, C) uint8 stacks -> action logits with a
cross-entropy on the recorded actions, and prints their loss and accuracy on frames of episodes
none of them trained on (the last `--held-out` episodes):

* "stack": the Nature DQN network on the stack standardised by the training frames' pixel
  statistics (`control_learning.NatureCNN`, the benchmark's `cnn`);
* "diff": the same, also reading the stack's differences between consecutive frames
  (`cnn:diff=1`; `GatoConfig.frame_differences` for a frame group);
* "pool", "pooldiff": the stack max-pooled 2x2 to 42x42 (a max keeps a ball of one or two
  pixels) and a half-size convolution stack, without and with the differences;
* "coord": the Nature network with two more input channels, each pixel's x and y in [-1, 1]
  (CoordConv, Liu et al. 2018);
* "spatial": one 8x8/4 convolution, a 3x3 one of K channels, and each channel's expected x and
  y under a softmax over its map (a spatial softmax, Levine et al. 2016), then the head.

The readers draw the same batches, in one process, interleaved step by step, so their times are
comparable on a shared machine (ms a step, median).

    python benchmarks/frame_readers.py --data /tmp/pong_frames64 --steps 4000
    python benchmarks/frame_readers.py --data DIR --readers stack,diff --every 500 --json out.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from control_learning import (  # noqa: E402
    FrameStacks,
    LazyEpisodes,
    NatureCNN,
    episode_column,
    load_data,
    pixel_statistics,
    standardised_frames,
)

from gato.files import atomic_write_json  # noqa: E402
from gato.modeling.frames import with_differences  # noqa: E402
from gato.tasks.registry import get_task  # noqa: E402

READERS = ("stack", "diff", "pool", "pooldiff", "coord", "spatial")


class PooledCNN(nn.Module):
    """Stacks max-pooled 2x2, then convolutions 32x4x4/2, 64x3x3/2, 64x3x3/1 and a 512-unit
    head: the Nature network's shape at half the side."""

    def __init__(self, channels: int, num_values: int, side: int, mean: float, std: float,
                 differences: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.mean, self.std, self.differences = mean, std, differences
        inputs = 2 * channels - 1 if differences else channels
        self.conv = nn.Sequential(
            nn.Conv2d(inputs, 32, 4, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, inputs, side // 2, side // 2)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, num_values))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # Pooled before standardising: a max over raw pixels keeps the ball's brightness.
        x = F.max_pool2d(frames.permute(0, 3, 1, 2).float(), 2)
        x = (x - self.mean) / self.std
        return self.head(self.conv(with_differences(x) if self.differences else x))


def coordinates(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(side, side) x and y of each pixel's centre, in [-1, 1] across the image."""
    centres = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    return centres[None, :].expand(side, side), centres[:, None].expand(side, side)


class CoordCNN(nn.Module):
    """The Nature network on the standardised stack and two channels of pixel coordinates."""

    def __init__(self, channels: int, num_values: int, side: int, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std
        self.net = NatureCNN(channels + 2, num_values, side=side, mean=0.0, std=1.0)
        x, y = coordinates(side)
        self.register_buffer("grid", torch.stack([x, y])[None])  # (1, 2, side, side)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = standardised_frames(frames, self.mean, self.std)
        x = torch.cat([x, self.grid.expand(len(x), -1, -1, -1)], dim=1)
        return self.net.head(self.net.conv(x))


def spatial_softmax(maps: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) feature maps, (K,) log-temperatures -> (B, 2 K): each map's expected x
    (first K) and y (last K) under softmax(map * exp(temperature)) over its H W pixels."""
    b, k, h, w = maps.shape
    if h != w:
        raise ValueError(f"spatial_softmax needs square maps, got {h}x{w}")
    p = torch.softmax(maps.flatten(2) * temperature.exp()[None, :, None], dim=-1)  # (B, K, HW)
    x, y = coordinates(h)
    return torch.cat([(p * x.reshape(-1)).sum(-1), (p * y.reshape(-1)).sum(-1)], dim=1)


class SpatialSoftmaxCNN(nn.Module):
    """Convolutions 32x8x8/4 and K x3x3/1 (padded), each of the K maps reduced to its expected
    x and y (`spatial_softmax`), and a 512-unit head on the 2 K coordinates."""

    def __init__(self, channels: int, num_values: int, side: int, mean: float, std: float,
                 keypoints: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.mean, self.std = mean, std
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, keypoints, 3, padding=1),
        )  # fmt: skip
        self.temperature = nn.Parameter(torch.zeros(keypoints))
        self.head = nn.Sequential(
            nn.Linear(2 * keypoints, 512), nn.ReLU(), nn.Linear(512, num_values)
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        maps = self.conv(standardised_frames(frames, self.mean, self.std))
        return self.head(spatial_softmax(maps, self.temperature))


def make_reader(name: str, channels: int, num_values: int, side: int, mean: float,
                std: float) -> nn.Module:  # fmt: skip
    """One of `READERS`, for stacks of `channels` frames of `side` pixels standardised by the
    training frames' `mean` and `std`."""
    if name == "stack":
        return NatureCNN(channels, num_values, side=side, mean=mean, std=std)
    if name == "diff":
        return NatureCNN(channels, num_values, side=side, mean=mean, std=std, differences=True)
    if name in ("pool", "pooldiff"):
        return PooledCNN(channels, num_values, side, mean, std, differences=name == "pooldiff")
    if name == "coord":
        return CoordCNN(channels, num_values, side, mean, std)
    if name == "spatial":
        return SpatialSoftmaxCNN(channels, num_values, side, mean, std)
    raise ValueError(f"unknown frame reader {name!r}: one of {', '.join(READERS)}")


def held_out_split(first: torch.Tensor, held_out: int) -> int:
    """(N,) each step's episode start -> the first step of the last `held_out` episodes (the
    steps before it are trained on)."""
    starts = torch.unique(first)
    if not 0 < held_out < len(starts):
        raise ValueError(
            f"--held-out must leave episodes on both sides: 1 to {len(starts) - 1} of "
            f"{len(starts)}, got {held_out}"
        )
    return int(starts[-held_out])


@dataclass
class ReaderConfig:
    """One run of the benchmark (the command line's options)."""

    data: str = ""
    """A folder of the task's episodes (`control_learning.load_data`)."""
    task: str = "atari-pong"
    readers: tuple[str, ...] = READERS
    steps: int = 4000
    every: int = 250
    """Measure the held-out loss every this many steps."""
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 1000
    """Steps of linear warmup from 0, then `lr` constant."""
    held_out: int = 4
    measure_frames: int = 2048
    """Held-out frames (drawn once) the loss and accuracy are measured on."""
    seed: int = 0
    threads: int = 2
    json: str | None = None


@dataclass
class ReaderCurve:
    reader: str
    steps: list[int] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    held_out_losses: list[float] = field(default_factory=list)
    held_out_accuracy: list[float] = field(default_factory=list)
    ms_per_step: float = 0.0
    parameters: int = 0


def train_readers(config: ReaderConfig, frames: FrameStacks, actions: torch.Tensor,
                  num_values: int) -> list[ReaderCurve]:  # fmt: skip
    """Train every reader of `config` on the same batches of `frames` / `actions` (each step's
    stack and recorded action) -> their curves."""
    if len(actions) != len(frames):
        raise ValueError(f"{len(frames)} frame stacks but {len(actions)} actions")
    for name in config.readers:
        if name not in READERS:
            raise ValueError(f"unknown frame reader {name!r}: one of {', '.join(READERS)}")
    if config.every < 1 or config.steps < config.every:
        raise ValueError(f"--every {config.every} must be in 1..--steps ({config.steps})")
    cut = held_out_split(frames.first, config.held_out)
    mean, std = pixel_statistics(frames.frames[:cut])
    side = frames.frames.shape[-1]
    draw = np.random.default_rng(config.seed + 1)
    measured = cut + torch.from_numpy(
        draw.choice(len(frames) - cut, min(config.measure_frames, len(frames) - cut), False)
    )
    # Gathered once: every reader is measured on these stacks at every point.
    measured_x, measured_y = frames[measured], actions[measured]
    nets, optimizers, curves, times, running = {}, {}, {}, {}, {}
    for name in config.readers:
        torch.manual_seed(config.seed)  # every reader from the same draw of the generator
        nets[name] = make_reader(name, frames.depth, num_values, side, mean, std)
        optimizers[name] = torch.optim.Adam(nets[name].parameters(), lr=config.lr, fused=True)
        params = sum(p.numel() for p in nets[name].parameters())
        curves[name] = ReaderCurve(name, parameters=params)
        times[name], running[name] = [], []
    rng = np.random.default_rng(config.seed)
    for step in range(1, config.steps + 1):
        index = torch.from_numpy(rng.integers(0, cut, config.batch))
        x, y = frames[index], actions[index]
        rate = config.lr * min(1.0, step / config.warmup) if config.warmup else config.lr
        for name, net in nets.items():
            start = time.perf_counter()
            for group in optimizers[name].param_groups:
                group["lr"] = rate
            loss = F.cross_entropy(net(x), y)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            times[name].append(time.perf_counter() - start)
            running[name].append(loss.item())
        if step % config.every == 0:
            for name, net in nets.items():
                net.eval()
                with torch.no_grad():
                    logits = net(measured_x)
                net.train()
                curve = curves[name]
                curve.steps.append(step)
                curve.train_losses.append(float(np.mean(running[name])))
                curve.held_out_losses.append(F.cross_entropy(logits, measured_y).item())
                right = (logits.argmax(-1) == measured_y).float().mean().item()
                curve.held_out_accuracy.append(right)
                running[name] = []
                print(
                    f"  {name:9s} step {step:6d}  held-out loss {curve.held_out_losses[-1]:.3f}"
                    f"  accuracy {right:.3f}",
                    flush=True,
                )
    for name, curve in curves.items():
        curve.ms_per_step = 1000 * statistics.median(times[name])
    return list(curves.values())


def table(curves: list[ReaderCurve]) -> str:
    """Held-out loss (accuracy) by step, one row a reader, and its median ms a step."""
    steps = curves[0].steps
    head = "| reader | " + " | ".join(f"{s:,}" for s in steps) + " | ms a step | parameters |"
    lines = [head, "| --- |" + " --- |" * (len(steps) + 2)]
    for c in curves:
        pairs = zip(c.held_out_losses, c.held_out_accuracy, strict=True)
        cells = " | ".join(f"{loss:.3f} ({right:.2f})" for loss, right in pairs)
        lines.append(f"| {c.reader} | {cells} | {c.ms_per_step:.1f} | {c.parameters:,} |")
    return "\n".join(lines)


def load_frames(config: ReaderConfig) -> tuple[FrameStacks, torch.Tensor, int]:
    """The task's episodes at `config.data` -> (their stacks, their actions, the actions'
    count)."""
    task = get_task(config.task)
    if task.action.kind != "discrete":
        raise ValueError(f"{task.id}: frame readers clone discrete actions, not {task.action.kind}")
    if "image_observations" not in task.observation:
        raise ValueError(f"{task.id} has no image observations")
    dataset = load_data(config.data, task)
    episodes = LazyEpisodes(dataset, len(dataset))
    actions = np.concatenate(episode_column(episodes, "discrete_actions")).astype(np.int64)
    return FrameStacks(episodes), torch.from_numpy(actions), task.action.num_values


def parse_args(argv: Sequence[str] | None = None) -> ReaderConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a folder of the task's episodes")
    parser.add_argument("--task", default="atari-pong")
    parser.add_argument("--readers", default=",".join(READERS),
                        help=f"comma-separated, of {', '.join(READERS)}")  # fmt: skip
    for name in ("steps", "every", "batch", "warmup", "held_out", "measure_frames", "seed",
                 "threads"):  # fmt: skip
        default = getattr(ReaderConfig, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    parser.add_argument("--lr", type=float, default=ReaderConfig.lr)
    parser.add_argument("--json", default=None, help="write the curves here")
    args = vars(parser.parse_args(argv))
    args["readers"] = tuple(r for r in args["readers"].split(",") if r)
    return ReaderConfig(**args)


def main(argv: Sequence[str] | None = None) -> list[ReaderCurve]:
    config = parse_args(argv)
    torch.set_num_threads(config.threads)
    frames, actions, num_values = load_frames(config)
    print(f"{config.task}: {len(frames):,} frame stacks from {config.data}", flush=True)
    curves = train_readers(config, frames, actions, num_values)
    print(table(curves))
    if config.json:
        report: dict[str, Any] = {"config": asdict(config), "curves": [asdict(c) for c in curves]}
        atomic_write_json(config.json, report)
    return curves


if __name__ == "__main__":
    main()
