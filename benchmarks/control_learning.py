"""Learning efficiency on one control task: a specialist MLP against `GatoModel`, and ablations.

Every learner is trained on the same recorded episodes of one task (behaviour cloning, batches of
`--batch-timesteps` timesteps, Adam) and scored closed loop at each of `--steps` on held-out start
states (seeds `EVALUATION_SEED + k`, a range no collected episode uses) with the same lockstep
loop as `gato.evaluation` (`run_episodes`), as the registry's expert-normalised score.

Learners (`--learners`, comma-separated):
- `mlp`: the specialist reference, a 2 x 256 ReLU MLP on standardised raw observations, each
  action dimension a 256-bin cross-entropy over [-1, 1] (continuous actions; its bins read as
  the policy reads GatoModel's, by `--action-decoding`: the median by default), or one
  cross-entropy over the task's actions (discrete actions: gym-cartpole);
- `mlp-features`: the same MLP on what a grouped `GatoModel` is given of an observation (each
  value's mu-law bin, then the Fourier features of `ENCODINGS["grouped"]`) instead of
  standardised floats: beside `mlp` and the grouped GatoModel it says whether a gap lies in the
  representation of values or in the transformer;
- `mlp:<input>[:freq=F][:period=P]`: the same MLP on another representation of the values
  (`MLP_INPUTS`: floats, decoded, symlog, code, fourier_code, fourier_symlog, fourier_z), e.g.
  `mlp:fourier_z:freq=8:period=8`;
- `cnn`: the specialist for image tasks (atari-pong): the Nature DQN network (Mnih et al. 2015:
  convolutions 32x8x8/4, 64x4x4/2, 64x3x3/1, a 512-unit layer) on the environment's 84x84x4
  frame stacks (the tokenizer-independent frames, standardised by the training frames' pixel
  mean and standard deviation), a cross-entropy over the task's discrete actions;
  `cnn:shift=N` moves each training frame stack by up to N pixels (`random_shift`);
  `cnn:prev=K` also reads the K previous actions (one-hot, after the convolutions; recorded in
  training, its own in play: `DiscreteActor`), which an expert with a memory of its
  presses (`pong-frames`) decides by; `cnn:diff=1` also reads the stack's differences between
  consecutive frames (`gato.modeling.frames.with_differences`);
- `gato:<value_embedding>:<window>`: `GatoModel` (`--width`, `--layers`) through the real
  tokenizer, `collate`, forward and loss, on windows of `<window>` timesteps (a batch holds
  batch-timesteps / window windows, so every learner is shown the same timesteps), acting with
  `GatoPolicy` over a context of the same `<window>` timesteps, no prompt. `<value_embedding>` is a
  `GatoConfig.value_embedding` choice: the ablation of how continuous values are embedded; the
  window is the ablation of how much history the context holds. Options may follow, each as
  `:key=value`: `top=<int>` (`GatoConfig.value_fourier_top`), `freq=<int>`
  (`value_fourier_features`), `loss=range|vocabulary`
  (`GatoConfig.value_loss`), `head=embedding|table` (`GatoConfig.value_head`), `lr=<float>`
  and `warmup=<steps>` (this learner's optimiser), `drop=<p>` (action dropout, as the Trainer's
  `action_dropout`), `hist=<n>` (the policy keeps n past timesteps,
  `PolicyConfig.history_steps`), `std=1` (observations tokenized standardised by the training
  episodes' statistics, `GatoTokenizer.standardising`), `pack=<n>` (n windows of random
  episodes side by side in a row, as the main job's `control_window_steps` rows), `iso=1` (each
  of those windows attends only to itself, `MixtureConfig.isolate_packed`), `obs=<K>`
  and `act=<K>` (grouped values: `GatoConfig.continuous_observation_group` /
  `continuous_action_group`), `bins=<n>`
  (`action_group_bins`), `sep=0|1` (`keep_separator`), `feat=<features>`
  (`group_value_features`: fourier, symlog, symlog_mlp, lowfreq, lowfreq_mlp, lowfreq+fourier),
  `period=<float>` (`group_value_period`), `blr=<share>` (the blocks' learning rate as a share
  of the learner's, `TrainConfig.block_lr_scale`), `ema=<decay>` (this learner scored on its
  weights' moving average, as `--ema` does for every learner and the Trainer's `ema_decay`),
  `prec=bf16` (this learner's `--precision`), `skip=1` (`GatoConfig.action_head_skip`:
  the action head also reads the observation group's encoding), `dropout=<p>`
  (`GatoConfig.dropout`), `patch=<encoder>` (`GatoConfig.patch_encoder`: how an image patch
  becomes a vector; image tasks are tokenized a window at a time, `ImageWindows`), `psize=<int>`
  (`GatoConfig.patch_size`, the tokenizer's too: `psize=84` makes each 84x84 frame stack one
  token), `frame=<G>` (`GatoConfig.frame_group`: an observation's G x G patches one position,
  the Nature stack on the frame put back together; `frame=5` on 84x84 stacks), `fdiff=1`
  (`GatoConfig.frame_differences`: that stack reads its frames' differences too), e.g.
  `gato:table+fourier:8:top=8:loss=range:lr=3e-3` or `gato:fourier:1:obs=32:act=8:sep=0`.

`--precision bf16` trains every learner's forward under bf16 autocast, as the Trainer does on
a GPU or on a CPU with bf16 instructions (scoring stays fp32). `--time N` measures instead of
learning: N training steps of each learner, interleaved in turns
(so the machine's load hits all alike), the median milliseconds of a step.

    python benchmarks/control_learning.py --task gym-pendulum            # the table in docs/
    python benchmarks/control_learning.py --tiny                          # ~30 s smoke run

The data: `python -m gato.data collect --task gym-pendulum --episodes 56` (the main job's amount);
`--data` points elsewhere. Writes a JSON of the curves and a figure (`--figure`).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gato.codecs import (  # noqa: E402
    bins_to_continuous,
    continuous_to_bins,
    mu_law_decode,
    mu_law_encode,
)
from gato.data import load_episodes  # noqa: E402
from gato.evaluation.control import run_episodes  # noqa: E402
from gato.files import atomic_write_json  # noqa: E402
from gato.inference.sampling import ORDERED_DECODINGS, ordered_classes  # noqa: E402
from gato.modeling.config import ENCODINGS, GatoConfig  # noqa: E402
from gato.modeling.embedding import nature_convolutions, value_fourier_features  # noqa: E402
from gato.modeling.frames import with_differences  # noqa: E402
from gato.modeling.model import GatoModel  # noqa: E402
from gato.policy import GatoPolicy, PolicyConfig  # noqa: E402
from gato.schema import ACTION_COLUMNS, OBSERVATION_COLUMNS  # noqa: E402
from gato.tasks.envs import make_env  # noqa: E402
from gato.tasks.envs.atari import protocol_env  # noqa: E402
from gato.tasks.experts.learner import save_learner  # noqa: E402
from gato.tasks.registry import get_task  # noqa: E402
from gato.tasks.scores import EVALUATION_SEED, normalized_score  # noqa: E402
from gato.tokens.batch import TokenSequence, collate, mask_actions  # noqa: E402
from gato.tokens.statistics import ObservationStatistics  # noqa: E402
from gato.tokens.tokenizer import GatoTokenizer  # noqa: E402
from gato.tokens.windows import take_steps  # noqa: E402
from gato.training.schedule import (  # noqa: E402
    LR_SCHEDULES,
    learning_rate_factor,
    parameter_groups,
)

DEFAULT_LEARNERS = "mlp,gato:table:1,gato:table+fourier:1,gato:fourier:1,gato:fourier:8"
ACTION_BINS = 256


@dataclass
class BenchConfig:
    task: str = "gym-pendulum"
    data: str | None = None
    """Episodes folder; default the task's dataset."""
    learners: str = DEFAULT_LEARNERS
    steps: tuple[int, ...] = (300, 1000, 3000)
    """Optimiser steps at which every learner is scored."""
    batch_timesteps: int = 256
    lr: float = 1e-3
    warmup: int = 0
    """Steps of linear learning-rate warmup from 0 (then as `schedule` says)."""
    schedule: str = "constant"
    """The learning rate after the warmup: "constant", or decayed to 0 at the last scored step
    by one of `gato.training.schedule.LR_SCHEDULES` ("cosine", "wsd"): every point before the
    last is then scored on the way down."""
    action_dropout: float = 0.0
    """GatoModel: hide each context action token with this probability in training
    (`gato.tokens.batch.mask_actions`, the Trainer's `action_dropout`)."""
    act_history: int | None = None
    """GatoModel: past timesteps the policy keeps (`PolicyConfig.history_steps`); None: the
    training window's (window - 1)."""
    pack: int = 1
    """GatoModel: windows side by side in a training row, each of a random episode (the main
    job's rows with `control_window_steps`); the policy still keeps `window` - 1 past steps."""
    isolate_packed: bool = False
    """GatoModel: each packed window attends only to itself (`MixtureConfig.isolate_packed`)."""
    block_lr_scale: float = 1.0
    """GatoModel: the transformer blocks' learning rate as a share of `lr`
    (`gato.training.schedule.parameter_groups`)."""
    held_out: int = 0
    """Hold the data's last N episodes out of training: at each scored point every learner's
    loss on `held_out_batches` batches of them (the same draws at every point, in eval mode) is
    recorded beside its score (`Curve.held_out_losses`)."""
    held_out_batches: int = 16
    precision: str = "fp32"
    """Training arithmetic: "fp32", or "bf16" (the forward under bf16 autocast, as the Trainer
    trains on a GPU or a CPU with bf16 instructions); scoring is in fp32 either way."""
    ema: float = 0.0
    """Score an exponential moving average of the weights with this decay per step
    (`torch.optim.swa_utils.get_ema_multi_avg_fn`); 0: the weights as trained."""
    standardise: bool = False
    """GatoModel: tokenize each observation value standardised by the training episodes'
    per-dimension mean and deviation (`GatoTokenizer.standardising`)."""
    eval_episodes: int = 10
    action_decoding: str = "median"
    """How every learner reads a continuous action's bins when it acts (`ORDERED_DECODINGS`: the
    mode, median or mean's bin); the policy's default, so specialist and GatoModel read alike."""
    max_episodes: int | None = None
    """Train on the first episodes only."""
    width: int = 128
    layers: int = 2
    heads: int = 4
    seed: int = 0
    threads: int = 1
    eval_max_steps: int | None = None
    """Cut evaluation episodes (the --tiny run; scores are then not comparable)."""
    atari_protocol: str | None = None
    """Atari: score under this protocol (`gato.tasks.envs.atari.ATARI_PROTOCOLS`: "sticky" for
    sticky actions); None: as the data was collected."""
    atari_options: tuple[str, ...] = ()
    """Atari: "key=value" options replacing the protocol's (`sticky_actions=0.25`, ...)."""
    json: str | None = None
    """Write the curves here, again after every scored point (a stopped run keeps its points)."""
    save_learners: str | None = None
    """A folder: every discrete specialist (`cnn`, `mlp` on a discrete task) is saved at each
    scored point, with the weights it was scored with, as `<learner>-seed<S>-step<N>.pt2`
    (`gato.tasks.experts.learner.save_learner`): the learner that `python -m gato.data collect
    --learner` plays while the expert labels (DAgger)."""


PRECISIONS = ("fp32", "bf16")


def training_precision(config: BenchConfig) -> torch.autocast:
    """The context a learner's training forward runs in: bf16 autocast for "bf16", a disabled
    autocast for "fp32"."""
    if config.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {config.precision!r}")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16")


@dataclass
class Curve:
    learner: str
    steps: list[int] = field(default_factory=list)
    timesteps: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    """Expert-normalised closed-loop score at each point (1.0 = the expert)."""
    losses: list[float] = field(default_factory=list)
    """Mean training loss over the steps since the previous point."""
    held_out_losses: list[float] = field(default_factory=list)
    """Loss on the held-out episodes' batches at each point (`BenchConfig.held_out`; empty
    without)."""
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    parameters: int = 0
    seed: int = 0


# ---------------------------------------------------------------------------------------------
# The specialist
# ---------------------------------------------------------------------------------------------


_GROUPED = GatoConfig(**ENCODINGS["grouped"])
"""The grouped encoding whose value features `mlp-features` reads (built once, not per batch)."""


def gato_value_features(obs: torch.Tensor) -> torch.Tensor:
    """(B, O) raw observations -> (B, O * (2 F + 1)): what a grouped `GatoModel` is given of them
    (each value's mu-law bin as the tokenizer cuts it, then `value_fourier_features` with
    `ENCODINGS["grouped"]`'s frequencies), before its learned projection."""
    bins = continuous_to_bins(mu_law_encode(obs.double().numpy()))
    features = value_fourier_features(
        torch.from_numpy(bins), _GROUPED.value_fourier_features, _GROUPED.value_fourier_top
    )
    return features.flatten(1)


def decoded(obs: torch.Tensor) -> torch.Tensor:
    """(B, O) -> (B, O) the values as the tokenizer's bins leave them (mu-law, 1,024 bins, the
    bin centre decoded back to the environment's units)."""
    bins = continuous_to_bins(mu_law_encode(obs.double().numpy()))
    return torch.from_numpy(mu_law_decode(bins_to_continuous(bins))).float()


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def periodic(u: torch.Tensor, frequencies: int, period: float) -> torch.Tensor:
    """(B, O) coordinates -> (B, O (2 F + 1)): [u, sin(2 pi k u / period), cos(...)], k = 1..F."""
    k = torch.arange(1, frequencies + 1, dtype=u.dtype) * (2 * math.pi / period)
    angles = u[..., None] * k  # (B, O, F)
    return torch.cat([u, torch.sin(angles).flatten(1), torch.cos(angles).flatten(1)], dim=1)


MLP_INPUTS = {
    "floats": lambda obs, z, f, p: z(obs),
    "decoded": lambda obs, z, f, p: z(decoded(obs)),
    "symlog": lambda obs, z, f, p: symlog(decoded(obs)),
    "code": lambda obs, z, f, p: z(torch.from_numpy(mu_law_encode(obs.double().numpy())).float()),
    "fourier_code": lambda obs, z, f, p: gato_value_features(obs),
    "fourier_symlog": lambda obs, z, f, p: periodic(symlog(decoded(obs)), f, p),
    "fourier_z": lambda obs, z, f, p: periodic(z(decoded(obs)), f, p),
    "fourier_zbins": lambda obs, z, f, p: periodic(decoded(z(obs)), f, p),
}
"""What the MLP reads of an observation (`mlp:<input>`), as `(obs, standardise, F, period)`:
`floats` the standardised floats (the specialist, `mlp`); `decoded` the same after the
tokenizer's bins; `symlog` symlog of the decoded values (no statistics); `code` the mu-law code,
standardised; `fourier_code` the grouped `GatoModel`'s features (`mlp-features`);
`fourier_symlog` / `fourier_z` periodic features (`periodic`) of symlog or of the standardised
decoded values; `fourier_zbins` those of the standardised values decoded from their bins (what
`GatoTokenizer.standardising` leaves of them). `standardise` uses the training data's
per-dimension mean and deviation of the coordinate it is applied to."""


class MLPPolicy(nn.Module):
    """Observations -> per-dimension logits over ACTION_BINS bins of [-1, 1].

    `inputs` (a `MLP_INPUTS` name) says what the MLP reads of an observation: `floats` (the
    specialist) or another representation of the same values, so that a pair of rows isolates
    the representation of values from the transformer trunk (`fourier_code`, `mlp-features`, is
    what the grouped GatoModel is given)."""

    def __init__(
        self,
        observations: np.ndarray,
        action_dims: int,
        hidden: int = 256,
        inputs: str = "floats",
        frequencies: int = 8,
        period: float = 8.0,
    ):
        super().__init__()
        if inputs not in MLP_INPUTS:
            raise ValueError(f"unknown MLP input {inputs!r}: one of {sorted(MLP_INPUTS)}")
        self.action_dims, self.inputs = action_dims, inputs
        self.frequencies, self.period = frequencies, period
        # Each input standardises at most one coordinate: its statistics, from a first pass
        # over the training observations.
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None
        features = self.represent(torch.from_numpy(np.asarray(observations, dtype=np.float32)))
        self.net = nn.Sequential(
            nn.Linear(features.shape[1], hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, action_dims * ACTION_BINS),
        )

    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, O) raw observations -> (B, features) what the MLP reads."""

        def standardise(x: torch.Tensor) -> torch.Tensor:
            if self.stats is None:
                self.stats = (x.mean(0), x.std(0) + 1e-6)
            mean, std = self.stats
            return (x - mean) / std

        return MLP_INPUTS[self.inputs](obs.float(), standardise, self.frequencies, self.period)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, O) -> (B, A, ACTION_BINS) logits."""
        return self.net(self.represent(obs)).view(obs.shape[0], self.action_dims, ACTION_BINS)


def to_bins(actions: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((actions + 1.0) * ACTION_BINS / 2), 0, ACTION_BINS - 1).astype(np.int64)


class StatelessActor:
    """What `run_episodes` asks of a policy's rows, for a policy that keeps no state between
    steps: nothing to reset, and `num_envs` follows the environments still playing."""

    num_envs: int

    def reset(self) -> None:
        pass

    def reset_env(self, row: int) -> None:
        pass

    def remove_envs(self, keep: list[int]) -> None:
        self.num_envs = len(keep)


class MLPActor(StatelessActor):
    """The MLP behind the `GatoPolicy` interface that `run_episodes` drives; each action
    dimension's bins read by `decoding` (`ORDERED_DECODINGS`)."""

    def __init__(self, net: MLPPolicy, num_envs: int, decoding: str = "median") -> None:
        if decoding not in ORDERED_DECODINGS:
            raise ValueError(f"decoding must be one of {ORDERED_DECODINGS}, got {decoding!r}")
        self.net, self.num_envs, self.decoding = net, num_envs, decoding

    def act_batch(self, observations: list[dict]) -> list[np.ndarray]:
        obs = np.stack([o["continuous_observations"] for o in observations]).astype(np.float32)
        with torch.no_grad():
            logits = self.net(torch.from_numpy(obs))  # (B, A, ACTION_BINS)
            flat = ordered_classes(logits.reshape(-1, ACTION_BINS), 0.0, self.decoding)
            bins = flat.view(logits.shape[:2]).numpy()
        return list((bins + 0.5) * (2.0 / ACTION_BINS) - 1.0)


# ---------------------------------------------------------------------------------------------
# Training and scoring
# ---------------------------------------------------------------------------------------------


def score(task: Any, actor: Any, config: BenchConfig) -> float:
    """Mean expert-normalised return of `eval_episodes` held-out episodes, played under
    `config`'s Atari protocol."""
    overrides = protocol_env(task, config.atari_protocol, config.atari_options)
    envs = [make_env(task, **overrides) for _ in range(actor.num_envs)]
    try:
        stats = run_episodes(
            actor, envs, config.eval_episodes, EVALUATION_SEED, max_steps=config.eval_max_steps
        )
    finally:
        for env in envs:
            env.close()
    return float(normalized_score(stats.returns.mean(), task.scores.expert, task.scores.random))


def parse_mlp(name: str) -> dict[str, Any]:
    """`mlp`, `mlp-features` or `mlp:<input>[:freq=F][:period=P]` -> `MLPPolicy` keywords."""
    if name == "mlp":
        return {"inputs": "floats"}
    if name == "mlp-features":
        return {"inputs": "fourier_code"}
    parts = name.split(":")
    if parts[0] != "mlp" or len(parts) < 2 or parts[1] not in MLP_INPUTS:
        raise ValueError(
            f"unknown MLP learner {name!r}: mlp, mlp-features or mlp:<input> with <input> one "
            f"of {sorted(MLP_INPUTS)}"
        )
    options: dict[str, Any] = {"inputs": parts[1]}
    for option in parts[2:]:
        key, _, value = option.partition("=")
        if key == "freq":
            options["frequencies"] = int(value)
        elif key == "period":
            options["period"] = float(value)
        else:
            raise ValueError(f"learner {name!r}: unknown option {option!r}; known: freq, period")
    return options


def source_index(held_out: bool, sources: int) -> int:
    """Which of a learner's data sources a batch is drawn from: 0 (training) or 1 (held out,
    refused when the learner was given none)."""
    if held_out and sources < 2:
        raise ValueError("a held-out batch needs held-out episodes (--held-out N)")
    return int(held_out)


def mlp_learner(
    episodes: Sequence[dict], config: BenchConfig, name: str = "mlp", held_out: Sequence[dict] = ()
):
    """(model, loss of a sampled batch: `batch(rng, held_out=False)`, of `held_out`'s episodes
    when asked)."""

    def data(part: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        obs = np.concatenate(episode_column(part, "continuous_observations"))
        return obs.astype(np.float32), np.concatenate(episode_column(part, "continuous_actions"))

    obs, actions = data(episodes)
    torch.manual_seed(config.seed)
    net = MLPPolicy(obs, actions.shape[1], **parse_mlp(name))
    sources = [(obs, actions)] + ([data(held_out)] if held_out else [])
    sources = [(torch.from_numpy(o), torch.from_numpy(to_bins(a))) for o, a in sources]

    def batch(rng: np.random.Generator, held_out: bool = False) -> torch.Tensor:
        x, y = sources[source_index(held_out, len(sources))]
        idx = torch.from_numpy(rng.integers(0, len(x), config.batch_timesteps))
        logits = net(x[idx])
        return F.cross_entropy(logits.reshape(-1, ACTION_BINS), y[idx].reshape(-1))

    return net, batch


def train_mlp(
    task: Any,
    episodes: Sequence[dict],
    config: BenchConfig,
    name: str = "mlp",
    held_out: Sequence[dict] = (),
) -> Curve:
    if task.action.kind == "discrete" and name == "mlp":
        return train_specialist("mlp", task, episodes, config, held_out)
    if task.action.kind == "discrete" or task.observation_columns != ("continuous_observations",):
        raise ValueError(f"{name} needs continuous observations and actions; {task.id} has not")
    net, batch = mlp_learner(episodes, config, name, held_out)
    return _train(
        name,
        net,
        batch,
        lambda: MLPActor(net.eval(), config.eval_episodes, config.action_decoding),
        task,
        config,
    )


# ---------------------------------------------------------------------------------------------
# Specialists for discrete actions: an MLP on state, a Nature CNN on frames
# ---------------------------------------------------------------------------------------------


class DiscreteMLP(nn.Module):
    """Standardised observations (B, O) -> logits over the task's actions (B, num_values)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, num_values: int, hidden: int = 256):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(mean.shape[0], hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_values),
        )  # fmt: skip

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net((obs - self.mean) / self.std)


def standardised_frames(frames: torch.Tensor, mean: float | torch.Tensor,
                        std: float | torch.Tensor) -> torch.Tensor:  # fmt: skip
    """(B, H, W, C) uint8 frame stacks -> (B, C, H, W) float, (pixel - mean) / std."""
    return (frames.permute(0, 3, 1, 2).float() - mean) / std


class NatureCNN(nn.Module):
    """uint8 frame stacks (B, 84, 84, C) -> logits over the task's actions (B, num_values).

    The pixels are standardised by the training frames' mean and standard deviation (`mean`,
    `std`, scalars). Why not /255: Pong's frames are ~99% a background of grey 87, and the
    ball and paddles that decide the action are a few pixels; scaled to [0, 1] the clone's loss
    stayed at the entropy of the action frequencies for 2,000 steps, standardised it falls
    from the first hundreds (docs/control_learning.md).
    """

    def __init__(
        self,
        channels: int,
        num_values: int,
        side: int = 84,
        mean: float = 0.0,
        std: float = 255.0,
        previous: int = 0,
        differences: bool = False,
    ):
        """`differences`: also read the stack's differences between consecutive frames
        (`gato.modeling.frames.with_differences`, as `GatoConfig.frame_differences`)."""
        super().__init__()
        if not std > 0:
            raise ValueError(f"NatureCNN: the pixels' std must be positive, got {std}")
        if previous < 0:
            raise ValueError(f"NatureCNN: previous must be >= 0, got {previous}")
        if differences and channels < 2:
            raise ValueError(f"NatureCNN: differences need 2 or more frames, got {channels}")
        self.num_values, self.previous, self.differences = num_values, previous, differences
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        inputs = 2 * channels - 1 if differences else channels
        self.conv = nn.Sequential(*nature_convolutions(inputs), nn.Flatten())
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, inputs, side, side)).shape[1]
        self.head = nn.Sequential(
            nn.Linear(flat + previous * num_values, 512), nn.ReLU(), nn.Linear(512, num_values)
        )

    def forward(self, frames: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, H, W, C) uint8; previous (B, `self.previous`) int64, the actions of the
        steps before (the last first; -1 before the episode's start), when `self.previous`."""
        x = standardised_frames(frames, self.mean, self.std)
        x = self.conv(with_differences(x) if self.differences else x)
        if self.previous:
            if previous is None or previous.shape != (len(frames), self.previous):
                raise ValueError(
                    f"NatureCNN reads the {self.previous} previous actions of each of the "
                    f"{len(frames)} frame stacks, got "
                    f"{None if previous is None else tuple(previous.shape)}"
                )
            # One-hot, the step before the episode's start a zero vector.
            onehot = F.one_hot(previous.clamp(min=0), self.num_values) * (previous >= 0)[..., None]
            x = torch.cat([x, onehot.flatten(1).to(x.dtype)], dim=1)
        return self.head(x)


def release_freed_memory() -> None:
    """Hand the memory freed so far back to the system (glibc's `malloc_trim`; elsewhere
    nothing). Decoding one Pong game's frame stacks and keeping a quarter of them leaves the
    freed rest to the heap: over 64 games the process held ~14 GB for ~6.4 GB of frames, and
    two runs did not fit in 24 GB; trimmed after each game, about half."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


class FrameStacks:
    """Every step's frame stack of some Atari episodes, holding each frame once.

    The adapter's observation at step t stacks frames t-3..t (oldest first, the first frame
    repeated at the reset), so keeping each step's newest frame rebuilds every stack exactly, in
    a quarter of the memory (Pong's 8 demo episodes: ~200 MB instead of ~800 MB).
    """

    def __init__(self, episodes: Sequence[dict]):
        # One episode's stacks at a time (`episodes` may read each when asked: `LazyEpisodes`),
        # so the stacks of all of them (64 Pong games: ~11 GB) are never held together.
        frames, lengths, self.depth = [], [], None
        for episode in episodes:
            stack = np.asarray(episode["image_observations"])
            if stack.ndim != 4 or stack.dtype != np.uint8:
                raise ValueError(
                    f"image episodes must hold (T, H, W, stack) uint8 frame stacks, got "
                    f"{stack.dtype} of shape {stack.shape}"
                )
            depth = stack.shape[-1]
            if self.depth not in (None, depth):
                raise ValueError(f"frame stacks of {self.depth} and of {depth} frames")
            self.depth = depth
            later = stack[depth:]  # the claim above, checked on the data
            if len(later) and not np.array_equal(later[..., -2], stack[depth - 1 : -1, ..., -1]):
                raise ValueError("frame stacks do not shift by one frame per step")
            frames.append(np.ascontiguousarray(stack[..., -1]))
            lengths.append(len(stack))
            del stack
            release_freed_memory()
        if not frames:
            raise ValueError("FrameStacks: no episodes")
        # Copied into place one episode at a time, each freed after: no second copy of them all.
        self.frames = torch.empty((sum(lengths), *frames[0].shape[1:]), dtype=torch.uint8)
        at = 0
        for _ in range(len(frames)):
            part = frames.pop(0)
            self.frames[at : at + len(part)] = torch.from_numpy(part)
            at += len(part)
            del part
            release_freed_memory()
        starts = np.cumsum([0, *lengths[:-1]])
        self.first = torch.from_numpy(np.repeat(starts, lengths))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) step indices -> (B, H, W, stack) uint8 stacks."""
        lags = torch.arange(self.depth - 1, -1, -1)
        rows = torch.maximum(index[:, None] - lags[None, :], self.first[index][:, None])
        return self.frames[rows].permute(0, 2, 3, 1)


class LazyEpisodes(Sequence):
    """The first `count` episodes of a dataset, each read when indexed: a learner that keeps part
    of each (`FrameStacks`: the newest frame of every stack) never holds them all at once, and a
    column is read alone (`column`), without the others' images."""

    def __init__(self, dataset: Any, count: int) -> None:
        if not 0 <= count <= len(dataset):
            raise ValueError(f"count {count} outside 0..{len(dataset)} (the dataset's episodes)")
        self.dataset, self.count = dataset, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        if not -self.count <= index < self.count:
            raise IndexError(f"episode {index} of {self.count}")
        return self.dataset[index % self.count]

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(self.count))

    def column(self, name: str) -> list[np.ndarray]:
        """One column of every episode, the other columns unread."""
        rows = self.dataset.select_columns([name])
        return [np.asarray(rows[i][name]) for i in range(self.count)]


def episode_column(episodes: Sequence[dict], name: str) -> list[np.ndarray]:
    """`name` of every episode; from `LazyEpisodes` without reading the other columns."""
    if isinstance(episodes, LazyEpisodes):
        return episodes.column(name)
    return [np.asarray(e[name]) for e in episodes]


def pixel_statistics(frames: torch.Tensor, chunk: int = 4096) -> tuple[float, float]:
    """(mean, standard deviation) of all the pixels of uint8 `frames`, in float64 by chunks (a
    float copy of Pong's 8 episodes would take ~1 GB); std at least 1 (a constant image)."""
    if frames.numel() == 0:
        raise ValueError("pixel_statistics: no frames")
    total = square = 0.0
    for part in frames.split(chunk):
        part = part.double()
        total += float(part.sum())
        square += float((part * part).sum())
    n = frames.numel()
    mean = total / n
    return mean, max(1.0, math.sqrt(max(0.0, square / n - mean * mean)))


class DiscreteActor(StatelessActor):
    """A network of observations -> action logits behind the interface `run_episodes` drives;
    plays the most likely action. With `previous` K > 0 the network also reads the last K
    actions this row played (`net(observations, previous)`, -1 where none: after a reset)."""

    def __init__(self, net: nn.Module, column: str, num_envs: int, previous: int = 0) -> None:
        self.net, self.column, self.num_envs, self.previous = net, column, num_envs, previous
        self.reset()

    def reset(self) -> None:
        self.history = torch.full((self.num_envs, self.previous), -1, dtype=torch.long)

    def reset_env(self, row: int) -> None:
        self.history[row] = -1

    def remove_envs(self, keep: list[int]) -> None:
        self.history = self.history[keep]
        self.num_envs = len(keep)

    def act_batch(self, observations: list[dict]) -> list[int]:
        obs = torch.from_numpy(np.stack([o[self.column] for o in observations]))
        with torch.no_grad():
            logits = self.net(obs, self.history) if self.previous else self.net(obs)
        actions = logits.argmax(-1)
        if self.previous:
            self.history = torch.cat([actions[:, None], self.history[:, :-1]], dim=1)
        return [int(a) for a in actions]


def random_shift(frames: torch.Tensor, pad: int, rng: np.random.Generator) -> torch.Tensor:
    """(B, H, W, C) uint8 frames -> the same, each moved by up to `pad` pixels each way: padded
    by repeating its edge, then cropped back at a random offset (the augmentation of DrQ, Kostrikov
    et al. 2020, for learning from pixels). pad 0 returns the frames unchanged."""
    if pad < 0:
        raise ValueError(f"random_shift: pad must be >= 0, got {pad}")
    if pad == 0:
        return frames
    b, h, w, _ = frames.shape
    padded = F.pad(frames.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    offsets = rng.integers(0, 2 * pad + 1, size=(b, 2))
    out = torch.stack(
        [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())]
    )
    return out.permute(0, 2, 3, 1).to(frames.dtype)


def parse_cnn(name: str) -> dict[str, int]:
    """`cnn[:shift=N][:prev=K][:diff=1]` -> {"shift": the random shift in pixels, "prev": how
    many of the previous actions the network reads, "diff": 1 if it reads the stack's frame
    differences too} (0: none)."""
    kind, *options = name.split(":")
    if kind != "cnn":
        raise ValueError(f"not a cnn learner: {name!r}")
    parsed = {"shift": 0, "prev": 0, "diff": 0}
    for option in options:
        key, _, value = option.partition("=")
        if key not in parsed or not value.isdigit():
            raise ValueError(
                f"cnn learner {name!r}: options are shift=<pixels>, prev=<actions> and "
                f"diff=<0|1>, got {option!r}"
            )
        parsed[key] = int(value)
    if parsed["diff"] not in (0, 1):
        raise ValueError(f"cnn learner {name!r}: diff is 0 or 1, got {parsed['diff']}")
    return parsed


def previous_actions(actions: torch.Tensor, first: torch.Tensor, index: torch.Tensor, count: int):
    """(B, count) int64: the actions of the `count` steps before each of the steps `index` of
    `actions` (the last first), -1 where that step lies before its episode's start (`first`:
    each step's episode's first step)."""
    lags = torch.arange(1, count + 1)
    rows = index[:, None] - lags[None, :]
    inside = rows >= first[index][:, None]
    return torch.where(inside, actions[rows.clamp(min=0)], torch.full_like(rows, -1))


def discrete_learner(
    kind: str,
    task: Any,
    episodes: Sequence[dict],
    config: BenchConfig,
    held_out: Sequence[dict] = (),
):
    """(model, loss of a sampled batch, actor factory, `save(step)` for `--save-learners`) of a
    discrete-action specialist: `kind` "mlp" (state) or "cnn[:shift=N]" (frames, randomly
    shifted in training by up to N pixels); cross-entropy on the recorded actions. The batch is
    `batch(rng, held_out=False)`: of `held_out`'s episodes when asked (never shifted)."""
    if task.action.kind != "discrete":
        raise ValueError(f"{kind}: task {task.id!r} has {task.action.kind} actions, not discrete")
    num_values = task.action.num_values

    def targets(part: Sequence[dict]) -> torch.Tensor:
        actions = np.concatenate(episode_column(part, "discrete_actions"))
        return torch.from_numpy(actions.astype(np.int64))

    def observations(part: Sequence[dict]) -> torch.Tensor:
        obs = np.concatenate(episode_column(part, "continuous_observations"))
        return torch.from_numpy(obs.astype(np.float32))

    y = targets(episodes)
    torch.manual_seed(config.seed)
    shift = previous = differences = 0
    if kind.startswith("cnn"):
        options = parse_cnn(kind)
        shift, previous, differences = options["shift"], options["prev"], options["diff"]
        if previous and config.save_learners:
            raise ValueError(
                f"{kind}: --save-learners saves networks of the frames alone; this one reads "
                "previous actions too"
            )
        if "image_observations" not in episodes[0]:
            raise ValueError(f"cnn: task {task.id!r} has no image observations (use mlp)")
        inputs_of: Callable[[Sequence[dict]], Any] = FrameStacks
        x = FrameStacks(episodes)
        mean, std = pixel_statistics(x.frames)
        net: nn.Module = NatureCNN(
            x.depth,
            num_values,
            side=x.frames.shape[-1],
            mean=mean,
            std=std,
            previous=previous,
            differences=bool(differences),
        )
        column = "image_observations"
    elif kind == "mlp":
        if "continuous_observations" not in episodes[0]:
            raise ValueError(f"mlp: task {task.id!r} has no continuous observations (use cnn)")
        inputs_of = observations
        x = observations(episodes)
        obs = x.numpy()
        net = DiscreteMLP(obs.mean(0), obs.std(0) + 1e-6, num_values)
        column = "continuous_observations"
    else:
        raise ValueError(f"unknown discrete specialist {kind!r}: mlp or cnn")
    sources = [(x, y)] + ([(inputs_of(held_out), targets(held_out))] if held_out else [])
    for xs, ys in sources:
        if len(xs) != len(ys):
            raise ValueError(f"{len(xs)} observations but {len(ys)} actions")

    def batch(rng: np.random.Generator, held_out: bool = False) -> torch.Tensor:
        xs, ys = sources[source_index(held_out, len(sources))]
        idx = torch.from_numpy(rng.integers(0, len(ys), config.batch_timesteps))
        inputs = random_shift(xs[idx], shift, rng) if shift and not held_out else xs[idx]
        if previous:
            past = previous_actions(ys, xs.first, idx, previous)
            return F.cross_entropy(net(inputs, past), ys[idx])
        return F.cross_entropy(net(inputs), ys[idx])

    def save(step: int) -> None:
        if config.save_learners:
            path = Path(config.save_learners) / f"{kind}-seed{config.seed}-step{step}.pt2"
            save_learner(net, x[torch.zeros(1, dtype=torch.long)], path, task, column)

    return (
        net,
        batch,
        lambda: DiscreteActor(net.eval(), column, config.eval_episodes, previous),
        save,
    )


def train_specialist(
    kind: str,
    task: Any,
    episodes: Sequence[dict],
    config: BenchConfig,
    held_out: Sequence[dict] = (),
) -> Curve:
    net, batch, actor, save = discrete_learner(kind, task, episodes, config, held_out)
    return _train(kind, net, batch, actor, task, config, on_point=save)


SPECIALISTS = {
    "mlp": train_mlp,
    "mlp-features": lambda task, episodes, config, held_out=(): train_mlp(
        task, episodes, config, "mlp-features", held_out
    ),
    "cnn": lambda task, episodes, config, held_out=(): train_specialist(
        "cnn", task, episodes, config, held_out
    ),
}
"""Specialist learner name -> `(task, episodes, config, held_out=()) -> Curve`."""


MODEL_OPTIONS = {
    "top": ("value_fourier_top", int),
    "freq": ("value_fourier_features", int),
    "loss": ("value_loss", str),
    "head": ("value_head", str),
    "obs": ("continuous_observation_group", int),
    "act": ("continuous_action_group", int),
    "bins": ("action_group_bins", int),
    "sep": ("keep_separator", lambda v: bool(int(v))),
    "feat": ("group_value_features", str),
    "period": ("group_value_period", float),
    "dropout": ("dropout", float),
    "skip": ("action_head_skip", lambda v: bool(int(v))),
    "patch": ("patch_encoder", str),
    "psize": ("patch_size", int),
    "frame": ("frame_group", int),
    "fdiff": ("frame_differences", lambda v: bool(int(v))),
}
TRAIN_OPTIONS = {
    "lr": ("lr", float),
    "warmup": ("warmup", int),
    "drop": ("action_dropout", float),
    "hist": ("act_history", int),
    "std": ("standardise", lambda v: bool(int(v))),
    "pack": ("pack", int),
    "iso": ("isolate_packed", lambda v: bool(int(v))),
    "blr": ("block_lr_scale", float),
    "ema": ("ema", float),
    "prec": ("precision", str),
}


def parse_gato(name: str, config: BenchConfig) -> tuple[str, int, dict[str, Any], BenchConfig]:
    """`gato:<value_embedding>:<window>[:key=value...]` -> (variant, window, GatoConfig
    overrides, this learner's BenchConfig)."""
    parts = name.split(":")
    if len(parts) < 3 or parts[0] != "gato" or not parts[2].isdigit():
        raise ValueError(
            f"unknown learner {name!r}: mlp or gato:<value_embedding>:<window>[:key=value...]"
        )
    model_fields: dict[str, Any] = {}
    train_fields: dict[str, Any] = {}
    for option in parts[3:]:
        key, _, value = option.partition("=")
        if key in MODEL_OPTIONS:
            field_name, kind = MODEL_OPTIONS[key]
            model_fields[field_name] = kind(value)
        elif key in TRAIN_OPTIONS:
            field_name, kind = TRAIN_OPTIONS[key]
            train_fields[field_name] = kind(value)
        else:
            known = sorted([*MODEL_OPTIONS, *TRAIN_OPTIONS])
            raise ValueError(f"learner {name!r}: unknown option {option!r}; known: {known}")
    return parts[1], int(parts[2]), model_fields, BenchConfig(**{**asdict(config), **train_fields})


def gato_config(
    variant: str,
    window: int,
    tokens_per_step: int,
    config: BenchConfig,
    overrides: dict[str, Any] | None = None,
) -> GatoConfig:
    return GatoConfig(
        hidden_size=config.width,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        head_dim=config.width // config.heads,
        intermediate_size=4 * config.width,
        max_position_embeddings=window * tokens_per_step,
        max_local_positions=64,
        resnet_channels=16,
        resnet_groups=4,
        value_embedding=variant,
        **(overrides or {}),
    )


class ImageWindows:
    """Steps `first`..`stop` of an image episode, tokenized when asked (`__call__`): the frames
    held once (`FrameStacks`), the other columns whole (they are small)."""

    def __init__(self, episodes: Sequence[dict], tokenizer: GatoTokenizer) -> None:
        self.frames = FrameStacks(episodes)
        kept = (OBSERVATION_COLUMNS.keys() | ACTION_COLUMNS.keys()) - {"image_observations"}
        columns = [k for k in episodes[0] if k in kept]
        self.columns = {k: episode_column(episodes, k) for k in columns}
        self.lengths = np.array([len(r) for r in episode_column(episodes, "rewards")])
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        if int(self.lengths.sum()) != len(self.frames):
            raise ValueError(
                f"{len(self.frames)} frame stacks but {int(self.lengths.sum())} rewards"
            )
        self.tokenizer = tokenizer

    def __call__(self, episode: int, first: int, stop: int) -> TokenSequence:
        return self.many([(episode, first, stop)])[0]

    def many(self, windows: Sequence[tuple[int, int, int]]) -> list[TokenSequence]:
        """[(episode, first, stop)] -> each window tokenized, as `__call__` would.

        In one tokenizer call: every step is tokenized alone (nothing in a step's tokens reads
        its neighbours), so the windows' steps end to end are one episode to cut back apart,
        and the tokenizer's cost per call is paid once a batch (64 one-step Pong windows: ~4x
        faster than 64 calls)."""
        for episode, first, stop in windows:
            if not 0 <= first < stop <= self.lengths[episode]:
                raise IndexError(
                    f"steps {first}..{stop} of episode {episode} ({self.lengths[episode]} steps)"
                )
        steps = [np.arange(first, stop) for _, first, stop in windows]
        rows = np.concatenate(
            [self.offsets[e] + s for (e, _, _), s in zip(windows, steps, strict=True)]
        )
        row = {
            k: np.concatenate([v[e][first:stop] for e, first, stop in windows])
            for k, v in self.columns.items()
        }
        row["image_observations"] = self.frames[torch.from_numpy(rows)].numpy()
        sequence = self.tokenizer.encode_jat_episode(row)
        bounds = np.cumsum([0] + [len(s) for s in steps])
        return [take_steps(sequence, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


Draw = Callable[[list[tuple[int, int, int]]], list[TokenSequence]]
"""[(episode, first, stop)] -> those windows tokenized."""


def token_windows(
    episodes: Sequence[dict], tokenizer: GatoTokenizer
) -> tuple[Draw, np.ndarray, int]:
    """(draw windows of `episodes`, their lengths in steps, the most tokens a step takes)."""
    if "image_observations" in episodes[0]:
        # Tokenized whole, 128 Pong games' patches would take ~30 GB: each window is tokenized
        # when drawn, from the frames held once.
        images = ImageWindows(episodes, tokenizer)
        # Every step of an image task has the same layout: one step's tokens say how many.
        return images.many, images.lengths, len(images(0, 0, 1).ids)
    sequences = [tokenizer.encode_jat_episode(e) for e in episodes]
    lengths = np.array([len(s.timestep_starts) for s in sequences])

    def draw(windows: list[tuple[int, int, int]]) -> list[TokenSequence]:
        return [take_steps(sequences[i], first, stop) for i, first, stop in windows]

    return draw, lengths, max(int(np.diff(s.timestep_starts).max()) for s in sequences)


def gato_learner(
    task: Any,
    episodes: Sequence[dict],
    name: str,
    config: BenchConfig,
    held_out: Sequence[dict] = (),
):
    """(model, loss of a sampled batch, actor factory, this learner's BenchConfig). The batch is
    `batch(rng, held_out=False)`: of `held_out`'s episodes when asked (tokenized as the training
    episodes are, by their statistics)."""
    variant, window, overrides, config = parse_gato(name, config)
    # The tokenizer cuts images as the model embeds them (`psize=84`: a whole frame a token).
    tokenizer = GatoTokenizer(patch_size=overrides.get("patch_size", GatoConfig.patch_size))
    if config.standardise:
        stats = ObservationStatistics.of_episodes(episodes)
        tokenizer = tokenizer.standardising(stats)
        overrides = {**overrides, "observation_statistics": {task.id: stats.to_dict()}}
    sources = [token_windows(part, tokenizer) for part in (episodes, held_out) if part]
    tokens_per_step = sources[0][2]
    torch.manual_seed(config.seed)
    pack = config.pack
    model = GatoModel(gato_config(variant, window * pack, tokens_per_step, config, overrides))
    per_batch = max(1, config.batch_timesteps // (window * pack))
    # A window may start at any step that leaves `window` steps in its episode.
    starts = [
        [(i, t) for i, n in enumerate(lengths) for t in range(max(1, n - window + 1))]
        for _, lengths, _ in sources
    ]

    def batch(rng: np.random.Generator, held_out: bool = False) -> torch.Tensor:
        k = source_index(held_out, len(sources))
        draw, lengths, _ = sources[k]
        picks = rng.integers(0, len(starts[k]), (per_batch, pack))
        rows = []
        windows = [
            (i, t, min(t + window, lengths[i])) for i, t in (starts[k][p] for p in picks.flat)
        ]
        drawn = draw(windows)
        for at in range(0, len(drawn), pack):
            parts = drawn[at : at + pack]
            rows.append(parts[0] if pack == 1 else TokenSequence.pack(parts))
        batch = collate(rows, segments=config.isolate_packed)
        if config.action_dropout > 0:
            seed = int(rng.integers(2**31))
            batch = mask_actions(batch, config.action_dropout, torch.Generator().manual_seed(seed))
        return model(**batch.as_dict()).loss

    def actor() -> GatoPolicy:
        policy_config = PolicyConfig(
            prompt_tokens=0,
            action_decoding=config.action_decoding,
            slide="recompute",
            hide_actions=config.action_dropout == 1.0,
            # The context holds `window` timesteps, or `pack` windows' worth: keep the view
            # of one training window either way.
            history_steps=config.act_history if config.act_history is not None else window - 1,
        )
        model.eval()
        spec = task.action
        return GatoPolicy(model, tokenizer, spec, None, policy_config, config.eval_episodes)

    return model, batch, actor, config


def train_gato(
    task: Any,
    episodes: Sequence[dict],
    name: str,
    config: BenchConfig,
    held_out: Sequence[dict] = (),
) -> Curve:
    model, batch, actor, config = gato_learner(task, episodes, name, config, held_out)
    return _train(name, model, batch, actor, task, config)


def lr_factor(config: BenchConfig) -> Callable[[int], float]:
    """The learning rate's factor at each step: `config.warmup` steps from 0, then constant or
    `config.schedule`'s decay to 0 at the last of `config.steps`."""
    warmup = max(config.warmup, 0)
    if config.schedule == "constant":
        return lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    if config.schedule not in LR_SCHEDULES:
        raise ValueError(
            f"schedule must be constant or one of {LR_SCHEDULES}, got {config.schedule!r}"
        )
    total = max(config.steps)
    return lambda s: learning_rate_factor(s, warmup, total, 0.0, config.schedule)


def held_out_loss(model: nn.Module, loss_of_batch, config: BenchConfig) -> float:
    """Mean loss of `config.held_out_batches` batches of the held-out episodes, in eval mode
    without gradients; the generator is seeded alike at every point, so every point (and every
    learner drawing batches the same way) is measured on the same draws."""
    rng = np.random.default_rng([config.seed, HELD_OUT_STREAM])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), training_precision(config):
            losses = [
                float(loss_of_batch(rng, held_out=True)) for _ in range(config.held_out_batches)
            ]
    finally:
        model.train(was_training)
    return float(np.mean(losses))


HELD_OUT_STREAM = 1
"""The held-out batches' generator stream, apart from training's (seeded by `seed` alone)."""


def _train(
    name: str, model: nn.Module, loss_of_batch, actor, task, config: BenchConfig, on_point=None
) -> Curve:
    """Train `model` on `loss_of_batch(rng)`, scoring `actor()` at each of `config.steps`;
    `on_point(step)` is called there too, with the weights scored."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    # Fused, as the Trainer's: the looped Adam took 14.6 of a 77 ms Pong step of GatoModel (its
    # 34,112-row table updated whole each step), the fused one 2.5.
    optimizer = torch.optim.Adam(
        parameter_groups(model, 0.0, config.block_lr_scale, config.lr), lr=config.lr, fused=True
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config))
    averaged = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
        if config.ema
        else None
    )
    parameters = sum(p.numel() for p in model.parameters())
    curve = Curve(name, parameters=parameters, seed=config.seed)
    step, losses = 0, []
    for point in config.steps:
        start = time.perf_counter()
        model.train()
        while step < point:
            with training_precision(config):
                loss = loss_of_batch(rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if averaged is not None:
                averaged.update_parameters(model)
            losses.append(loss.item())
            step += 1
        curve.train_seconds += time.perf_counter() - start
        start = time.perf_counter()
        if averaged is not None:
            # The actor acts with `model`: score the average in its place, then train on.
            trained = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(averaged.module.state_dict())
        if config.held_out:
            curve.held_out_losses.append(held_out_loss(model, loss_of_batch, config))
        result = score(task, actor(), config)
        if on_point is not None:
            on_point(step)
        if averaged is not None:
            model.load_state_dict(trained)
        curve.eval_seconds += time.perf_counter() - start
        curve.steps.append(step)
        curve.timesteps.append(step * config.batch_timesteps)
        curve.scores.append(result)
        curve.losses.append(float(np.mean(losses)) if losses else float("nan"))
        losses = []
        if config.json:
            write_json(config, [*_DONE, curve])
        held = f" held-out {curve.held_out_losses[-1]:.3f}" if curve.held_out_losses else ""
        print(
            f"  {name:28s} step {step:5d}  score {100 * result:6.1f}%  loss {curve.losses[-1]:.3f}"
            f"{held}"
            f"  ({curve.train_seconds:.0f} s train, {curve.eval_seconds:.0f} s eval)",
            flush=True,
        )
    return curve


# ---------------------------------------------------------------------------------------------
# Running, the table, the figure
# ---------------------------------------------------------------------------------------------


_DONE: list[Curve] = []
"""The curves of the current `run` finished so far."""


def write_json(config: BenchConfig, curves: list[Curve]) -> None:
    report = {"config": asdict(config), "curves": [asdict(c) for c in curves]}
    atomic_write_json(config.json, json.loads(json.dumps(report)))


def load_data(data: str, task: Any):
    """The episodes of `data`: a folder, or several joined by commas, each `FOLDER` or
    `FOLDER@N` (its first N episodes), concatenated in order (e.g. DART games then the DAgger
    games a learner played on them)."""
    parts = []
    for item in data.split(","):
        folder, at, count = item.partition("@")
        if at and not count.isdigit():
            raise ValueError(f"--data {item!r}: a folder's episode count must be an int (FOLDER@N)")
        if not Path(folder).exists():
            raise FileNotFoundError(
                f"no episodes at {folder}: collect them with `python -m gato.data collect --task "
                f"{task.id} --episodes 56` (or pass --data)"
            )
        dataset = load_episodes(folder, task=task)
        if at:
            if int(count) > len(dataset):
                raise ValueError(f"--data {item!r}: {folder} holds {len(dataset)} episodes")
            dataset = dataset.select(range(int(count)))
        parts.append(dataset)
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def episode_count(config: BenchConfig, dataset: Any) -> int:
    """How many of `dataset`'s episodes a run trains on: all, or the first `max_episodes`."""
    if config.max_episodes is None:
        return len(dataset)
    return min(config.max_episodes, len(dataset))


def split_episodes(config: BenchConfig, dataset: Any) -> tuple[LazyEpisodes, LazyEpisodes | tuple]:
    """(the episodes trained on, those held out for the loss): the dataset's last
    `config.held_out` episodes are held out, and training takes the first `max_episodes` of the
    rest (all of them by default)."""
    held = config.held_out
    if held < 0 or held >= len(dataset):
        raise ValueError(
            f"--held-out {held}: hold out 0 to {len(dataset) - 1} of the {len(dataset)} episodes "
            "(some must be left to train on)"
        )
    rest = dataset.select(range(len(dataset) - held)) if held else dataset
    episodes = LazyEpisodes(rest, episode_count(config, rest))
    if not held:
        return episodes, ()
    return episodes, LazyEpisodes(dataset.select(range(len(dataset) - held, len(dataset))), held)


def run(config: BenchConfig) -> list[Curve]:
    torch.set_num_threads(config.threads)
    task = get_task(config.task)
    if task.scores is None:
        raise ValueError(f"task {task.id!r} has no expert/random scores to normalise by")
    protocol_env(task, config.atari_protocol, config.atari_options)  # fails before training
    path = config.data or str(task.dataset_path)
    dataset = load_data(path, task)
    episodes, held_out = split_episodes(config, dataset)
    steps = sum(len(r) for r in episode_column(episodes, "rewards"))
    print(f"{task.id}: {len(episodes)} episodes, {steps} timesteps from {path}", flush=True)
    if held_out:
        print(f"  held out for the loss: the last {len(held_out)} episodes", flush=True)
    curves = _DONE
    curves.clear()
    for name in config.learners.split(","):
        if name in SPECIALISTS:
            curves.append(SPECIALISTS[name](task, episodes, config, held_out=held_out))
        elif name.startswith("mlp:"):
            curves.append(train_mlp(task, episodes, config, name, held_out))
        elif name.startswith("cnn:"):
            curves.append(train_specialist(name, task, episodes, config, held_out))
        elif name.startswith("gato:"):
            curves.append(train_gato(task, episodes, name, config, held_out))
        else:
            raise ValueError(
                f"unknown learner {name!r}: {' or '.join(SPECIALISTS)}, mlp:<input>, "
                "cnn[:shift=<pixels>][:prev=<actions>][:diff=1] or "
                "gato:<value_embedding>:<window>[:key=value...]"
            )
    return list(curves)


def time_steps(config: BenchConfig, count: int) -> dict[str, float]:
    """Median milliseconds of one training step (forward, backward, Adam) of each learner, the
    learners' steps interleaved in turns so that the machine's load falls on all alike."""
    torch.set_num_threads(config.threads)
    task = get_task(config.task)
    dataset = load_data(config.data or str(task.dataset_path), task)
    episodes = [dataset[i] for i in range(episode_count(config, dataset))]
    steppers = {}
    for name in config.learners.split(","):
        is_mlp = name in ("mlp", "mlp-features") or name.startswith("mlp:")
        own = config  # a GatoModel learner's options may change its own (`prec=bf16`)
        if is_mlp and task.action.kind != "discrete":
            model, batch = mlp_learner(episodes, config, name)
        elif name in SPECIALISTS or name.startswith("cnn:"):
            model, batch, _, _ = discrete_learner(name, task, episodes, config)
        else:
            model, batch, _, own = gato_learner(task, episodes, name, config)
        steppers[name] = (
            own,
            batch,
            torch.optim.Adam(model.train().parameters(), lr=config.lr, fused=True),
        )
    rng = np.random.default_rng(config.seed)
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for turn in range(count + 1):
        for name, (own, batch, optimizer) in steppers.items():
            start = time.perf_counter()
            with training_precision(own):
                loss = batch(rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if turn:  # the first step of each warms up allocations
                times[name].append(time.perf_counter() - start)
    result = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    for name, ms in result.items():
        print(f"  {name:44s} {ms:8.1f} ms/step", flush=True)
    return result


def by_learner(curves: list[Curve]) -> dict[str, list[Curve]]:
    """The curves of each learner (one per seed), in first-seen order."""
    out: dict[str, list[Curve]] = {}
    for c in curves:
        out.setdefault(c.learner, []).append(c)
    return out


def mean_scores(runs: list[Curve]) -> tuple[list[int], list[float]]:
    """(steps, mean score) over the steps every seed of a learner was scored at."""
    steps = [s for s in runs[0].steps if all(s in r.steps for r in runs)]
    means = [float(np.mean([r.scores[r.steps.index(s)] for r in runs])) for s in steps]
    return steps, means


def table(curves: list[Curve], config: BenchConfig) -> str:
    """One row per learner: its mean score over seeds at each point (each seed's in brackets
    when there are several), the seeds, the parameters and the milliseconds of a step."""
    points = sorted({s for c in curves for s in c.steps})
    header = ["learner", "seeds", "params", "ms/step"]
    header += [f"{s * config.batch_timesteps:,} ts" for s in points]
    rows = [header, ["-" * len(h) for h in header]]
    for name, runs in by_learner(curves).items():
        total_steps = sum(r.steps[-1] for r in runs if r.steps)
        ms = 1000 * sum(r.train_seconds for r in runs) / max(total_steps, 1)
        row = [name, ",".join(str(r.seed) for r in runs), f"{runs[0].parameters:,}", f"{ms:.0f}"]
        for s in points:
            scores = [r.scores[r.steps.index(s)] for r in runs if s in r.steps]
            if not scores:
                row.append("")
                continue
            cell = f"{100 * float(np.mean(scores)):.1f}%"
            if len(scores) > 1:
                cell += " (" + " ".join(f"{100 * v:.0f}" for v in scores) + ")"
            row.append(cell)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )


def figure(curves: list[Curve], config: BenchConfig, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, runs in by_learner(curves).items():
        steps, means = mean_scores(runs)
        timesteps = [s * config.batch_timesteps for s in steps]
        style = "k-o" if name == "mlp" else "-o"
        label = name if len(runs) == 1 else f"{name} (mean of {len(runs)} seeds)"
        (line,) = ax.plot(timesteps, [100 * m for m in means], style, label=label, markersize=4)
        if len(runs) > 1:  # each seed, faint, in the mean's colour
            for r in runs:
                ax.plot(r.timesteps, [100 * v for v in r.scores], color=line.get_color(),
                        alpha=0.25, linewidth=0.8)  # fmt: skip
    ax.axhline(100, color="tab:red", linestyle="--", linewidth=1)
    ax.axhline(80, color="tab:orange", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("timesteps shown")
    ax.set_ylabel("expert-normalised score, held-out starts (%)")
    ax.set_title(f"{config.task}: behaviour cloning, batch {config.batch_timesteps} timesteps")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def merge(paths: list[str], out_json: str | None, out_figure: str | None) -> list[Curve]:
    """Curves of several runs (the same batch; seeds of a learner are averaged) in one table,
    JSON and figure."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    config = BenchConfig(**{**reports[0]["config"], "steps": tuple(reports[0]["config"]["steps"])})
    curves = [Curve(**c) for r in reports for c in r["curves"]]
    config.learners = ",".join(by_learner(curves))
    print(table(curves, config))
    if out_json:
        write_json(BenchConfig(**{**asdict(config), "json": out_json}), curves)
    if out_figure:
        figure(curves, config, Path(out_figure))
    return curves


TINY = dict(steps=(20, 60), eval_episodes=2, max_episodes=4, width=32, batch_timesteps=64,
            eval_max_steps=50, learners="mlp,gato:table:4,gato:table+fourier:1")  # fmt: skip


def main(argv: list[str] | None = None) -> list[Curve]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = BenchConfig()
    parser.add_argument("--task", default=defaults.task)
    parser.add_argument(
        "--data", default=None,
        help="episodes folder (default: the task's); several joined by commas, each FOLDER[@N]",
    )  # fmt: skip
    parser.add_argument("--learners", default=defaults.learners)
    parser.add_argument("--steps", default=",".join(map(str, defaults.steps)))
    for name in ("batch_timesteps", "eval_episodes", "width", "layers", "heads", "seed", "threads"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--max-episodes", type=int, default=None)
    parser.add_argument(
        "--held-out", type=int, default=defaults.held_out,
        help="hold the data's last N episodes out of training and record each learner's loss "
        "on them at every point",
    )  # fmt: skip
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument(
        "--action-decoding", choices=ORDERED_DECODINGS, default=defaults.action_decoding,
        help="how every learner reads a continuous action's bins when it acts",
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=defaults.precision,
        help="training arithmetic: fp32, or bf16 autocast as the Trainer's (scoring in fp32)",
    )  # fmt: skip
    parser.add_argument(
        "--schedule", choices=("constant", *LR_SCHEDULES), default=defaults.schedule,
        help="the learning rate after the warmup: constant, or decayed to 0 at the last point",
    )  # fmt: skip
    parser.add_argument(
        "--ema", type=float, default=defaults.ema,
        help="score every learner's weights averaged with this decay per step (0: as trained)",
    )  # fmt: skip
    parser.add_argument(
        "--time", type=int, default=0, help="time this many training steps per learner instead"
    )
    parser.add_argument(
        "--atari-protocol", default=None,
        help="Atari: score under this protocol (data, jat, sticky); default: as collected",
    )  # fmt: skip
    parser.add_argument(
        "--atari-option", action="append", default=[],
        help="Atari: KEY=VALUE replacing the protocol's (sticky_actions=0.25, noop_max=0, ...)",
    )  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="a ~30 s smoke configuration")
    parser.add_argument("--json", default=None, help="write the curves here")
    parser.add_argument("--figure", default=None, help="write the figure here (PNG)")
    parser.add_argument(
        "--save-learners", default=None,
        help="a folder: save every discrete specialist at each scored point (DAgger's learner)",
    )  # fmt: skip
    parser.add_argument(
        "--merge", nargs="+", default=None, help="no training: the table and figure of these JSONs"
    )
    parser.add_argument(
        "--specialist-cache", nargs="?", const="", default=None,
        help="record the mlp specialist's final score for `eval.py control` (default file: "
        "data/cache/specialists.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.json, args.figure)
    fields = {k: getattr(args, k) for k in asdict(defaults) if hasattr(args, k)}
    fields["json"] = args.json
    fields["atari_options"] = tuple(args.atari_option)
    fields["steps"] = tuple(int(s) for s in str(args.steps).split(","))
    if args.tiny:
        # --tiny shrinks the run; learners named on the command line are kept.
        fields.update(
            {k: v for k, v in TINY.items() if k != "learners" or args.learners == defaults.learners}
        )
    config = BenchConfig(**fields)
    if args.time:
        time_steps(config, args.time)
        return []
    curves = run(config)
    print()
    print(table(curves, config))
    if args.json:
        write_json(config, curves)
    if args.figure:
        figure(curves, config, Path(args.figure))
    if args.specialist_cache is not None:
        cache_specialist(curves, config, args.specialist_cache or None)
    return curves


def cache_specialist(curves: list[Curve], config: BenchConfig, path: str | None) -> None:
    """The mlp's mean score over seeds at its last step into the specialist cache."""
    from gato.evaluation.baselines import write_specialist

    runs = by_learner(curves).get("mlp")
    if not runs:
        raise ValueError("--specialist-cache needs the mlp learner in --learners")
    if config.eval_max_steps is not None:
        raise ValueError("--specialist-cache: cut evaluation episodes are not a reference score")
    steps, means = mean_scores(runs)
    written = write_specialist(
        config.task, means[-1], path, learner="mlp", steps=steps[-1],
        episodes=config.eval_episodes, seeds=len(runs),
    )  # fmt: skip
    print(f"specialist {config.task}: {100 * means[-1]:.1f}% of expert -> {written}")


if __name__ == "__main__":
    main()
