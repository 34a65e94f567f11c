"""Where GatoModel loses time on Pong's frames: the patch encoder, or reading 25 patch tokens?

Each learner clones the same recorded frame stacks (one timestep each, batches of `--batch`,
Adam at `--lr` after a linear warmup of `--warmup` steps) and the table gives its training loss,
the mean over each `--every` steps (fewer timesteps are shown than the data holds, so it is
also a loss on unseen steps). The learners take a frame stack apart as `GatoModel` does, one
piece at a time:

- `cnn`: the specialist, control_learning.py's Nature CNN on standardised pixels;
- `patches+mlp`: the tokenizer's cut (84 -> 80 pixels, 25 patches of 16) through the model's
  own patch block (`PatchEmbedding`, the benchmark's 16 channels) plus a learned vector per
  patch position, the 25 vectors concatenated into a 512-unit layer: everything of the image
  path but attention;
- `patches+attention`: the same 25 vectors as tokens behind a readout token, through a pre-norm
  transformer (`--width`, `--layers`, `--heads`), the action read at the readout token as
  `GatoModel` reads it at the separator;
- `frame+attention`: the whole stack one token (`NaturePatchEmbedding`, `patch_encoder="nature"`
  at `patch_size=84`), the same transformer and readout.

    python benchmarks/image_readout.py --data /tmp/pong_frames64 --games 16   # docs/ table
    python benchmarks/image_readout.py --data DIR --games 1 --steps 20 --every 10   # smoke run

The data: `python -m gato.data collect --task atari-pong --episodes 16` (docs/control_learning.md
gives the collection behind the table).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import control_learning as cl  # noqa: E402

from gato.codecs import frames_to_patches  # noqa: E402
from gato.modeling.config import GatoConfig  # noqa: E402
from gato.modeling.embedding import NaturePatchEmbedding, PatchEmbedding  # noqa: E402
from gato.tasks.registry import get_task  # noqa: E402

LEARNERS = ("cnn", "patches+mlp", "patches+attention", "frame+attention")


@dataclass(frozen=True)
class ReadoutConfig:
    data: str
    games: int = 16
    learners: tuple[str, ...] = LEARNERS
    steps: int = 3000
    every: int = 500
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 500
    width: int = 128
    layers: int = 4
    heads: int = 4
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        unknown = [name for name in self.learners if name not in LEARNERS]
        if unknown:
            raise ValueError(f"unknown learners {unknown}; known: {list(LEARNERS)}")
        if self.steps < 1 or self.every < 1 or self.batch < 1 or self.games < 1:
            raise ValueError("steps, every, batch and games must be positive")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")


def encoder_config(config: ReadoutConfig, patch_size: int, encoder: str) -> GatoConfig:
    """The patch block as control_learning.py's GatoModel learner builds it (`gato_config`)."""
    shape = cl.BenchConfig(width=config.width, layers=config.layers, heads=config.heads)
    overrides = {"patch_size": patch_size, "patch_encoder": encoder}
    return cl.gato_config("table", 1, 1, shape, overrides)


class Readout(nn.Module):
    """A readout token in front of (B, N, D) tokens, a pre-norm transformer, logits from the
    readout token's output."""

    def __init__(self, config: ReadoutConfig, num_actions: int) -> None:
        super().__init__()
        width = config.width
        layer = nn.TransformerEncoderLayer(
            width, config.heads, 4 * width, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, num_actions))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.token.expand(len(tokens), -1, -1), tokens], dim=1)  # (B, 1 + N, D)
        return self.head(self.blocks(x)[:, 0])


class PatchLearner(nn.Module):
    """(B, 84, 84, C) uint8 stacks -> action logits, by the tokenizer's 16-pixel patches."""

    def __init__(self, config: ReadoutConfig, num_actions: int, mix: str) -> None:
        super().__init__()
        self.encoder = PatchEmbedding(encoder_config(config, 16, "resnet"))
        self.position = nn.Parameter(torch.randn(25, config.width) * 0.02)
        if mix == "mlp":
            self.mix: nn.Module = nn.Sequential(
                nn.Flatten(), nn.Linear(25 * config.width, 512), nn.ReLU(),
                nn.Linear(512, num_actions),
            )  # fmt: skip
        else:
            self.mix = Readout(config, num_actions)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        pixels = torch.from_numpy(frames_to_patches(frames.numpy(), 16, resize=True).pixels)
        b, n = pixels.shape[:2]  # (B, 25, C, 16, 16)
        tokens = self.encoder(pixels.flatten(0, 1)).reshape(b, n, -1) + self.position
        return self.mix(tokens)


class FrameLearner(nn.Module):
    """(B, 84, 84, C) uint8 stacks -> action logits, each stack one token."""

    def __init__(self, config: ReadoutConfig, num_actions: int) -> None:
        super().__init__()
        self.encoder = NaturePatchEmbedding(encoder_config(config, 84, "nature"))
        self.mix = Readout(config, num_actions)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.mix(self.encoder(frames.permute(0, 3, 1, 2))[:, None])


def make_learner(name: str, config: ReadoutConfig, stacks: cl.FrameStacks, num_actions: int):
    if name == "cnn":
        mean, std = cl.pixel_statistics(stacks.frames)
        return cl.NatureCNN(stacks.depth, num_actions, mean=mean, std=std)
    if name == "frame+attention":
        return FrameLearner(config, num_actions)
    return PatchLearner(config, num_actions, name.split("+")[1])


def train(name: str, config: ReadoutConfig, stacks: cl.FrameStacks, actions: torch.Tensor,
          num_actions: int) -> tuple[list[float], float]:  # fmt: skip
    """(mean loss over each `every` steps, milliseconds a step)."""
    torch.manual_seed(config.seed)
    net = make_learner(name, config, stacks, num_actions).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    warmup = max(config.warmup, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup))
    rng = np.random.default_rng(config.seed)
    losses, interval, start = [], [], time.perf_counter()
    for step in range(1, config.steps + 1):
        index = torch.from_numpy(rng.integers(0, len(actions), config.batch))
        loss = F.cross_entropy(net(stacks[index]), actions[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        interval.append(float(loss.detach()))
        if step % config.every == 0 or step == config.steps:
            losses.append(float(np.mean(interval)))
            interval = []
    return losses, (time.perf_counter() - start) * 1000 / config.steps


def run(config: ReadoutConfig) -> dict[str, tuple[list[float], float]]:
    torch.set_num_threads(config.threads)
    task = get_task("atari-pong")
    dataset = cl.load_data(config.data, task)
    if config.games > len(dataset):
        raise ValueError(f"--games {config.games}: {config.data} holds {len(dataset)} episodes")
    episodes = cl.LazyEpisodes(dataset, config.games)
    stacks = cl.FrameStacks(episodes)
    column = cl.episode_column(episodes, "discrete_actions")
    actions = torch.from_numpy(np.concatenate(column).astype(np.int64))
    if len(actions) != len(stacks):
        raise ValueError(f"{len(stacks)} frame stacks but {len(actions)} actions")
    results = {}
    for name in config.learners:
        results[name] = train(name, config, stacks, actions, task.action.num_values)
        print(f"  {name}: done ({results[name][1]:.0f} ms a step)", flush=True)
    return results


def table(results: dict[str, tuple[list[float], float]], config: ReadoutConfig) -> str:
    points = [min(config.every * (k + 1), config.steps) for k in range(len(next(iter(
        results.values()))[0]))]  # fmt: skip
    lines = [
        "| learner | " + " | ".join(f"{p:,}" for p in points) + " | ms a step |",
        "| --- " * (len(points) + 2) + "|",
    ]
    for name, (losses, ms) in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{x:.3f}" for x in losses) + f" | {ms:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, tuple[list[float], float]]:
    defaults = ReadoutConfig(data="")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a folder of atari-pong episodes")
    parser.add_argument("--games", type=int, default=defaults.games)
    parser.add_argument("--learners", default=",".join(defaults.learners))
    for name in ("steps", "every", "batch", "warmup", "width", "layers", "heads", "seed",
                 "threads"):  # fmt: skip
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    args = vars(parser.parse_args(argv))
    args["learners"] = tuple(s for s in args["learners"].split(",") if s)
    try:
        config = ReadoutConfig(**args)
    except ValueError as error:
        parser.error(str(error))
    results = run(config)
    print(table(results, config))
    return results


if __name__ == "__main__":
    main()
