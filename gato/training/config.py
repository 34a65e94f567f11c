"""`TrainConfig`: everything a run of the main job depends on, recorded next to every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gato.tracking import REPORT_TO, check_report_to
from gato.training.schedule import LR_SCHEDULES

__all__ = ["REPORT_TO", "TrainConfig"]


@dataclass
class TrainConfig:
    """Everything a training run depends on; recorded next to every checkpoint."""

    preset: str = field(default="tiny", metadata={"help": "model preset: tiny, 79m, 364m, 1.18b"})
    value_embedding_init: str = field(
        default="normal",
        metadata={
            "help": "initial rows of the continuous-value bins: normal, or smooth (nearby "
            "bins alike; GatoConfig.value_embedding_init)"
        },
    )
    encoding: str = field(
        default="grouped_z",
        metadata={
            "help": "how continuous values enter the model: grouped_z (a whole observation one "
            "position, standardised by each task's statistics and read by a value encoder; an "
            "action in one pass; with the blocks slowed, --block_lr_scale, it clones pendulum "
            "and the swing-up as fast as an MLP specialist, docs/control_learning.md), grouped "
            "(the same over Fourier features of the values' codes: pendulum yes, the swing-up "
            "no) or values (one token each, as Gato); gato.modeling.config.ENCODINGS"
        },
    )
    patch_encoder: str = field(
        default="resnet",
        metadata={
            "help": "how an image patch becomes a vector: resnet (Gato's block), linear (ViT's "
            "projection of the pixels), resnet+linear (their sum), mono_resnet+linear (the sum, "
            "the ResNet colour-blind) or nature (the Nature DQN's convolutions, for a whole "
            "frame a patch: with --patch_size 84); GatoConfig.patch_encoder"
        },
    )
    patch_size: int = field(
        default=16,
        metadata={
            "help": "side of the square image patches (a multiple of 4): 16 as Gato; 84 with "
            "--patch_encoder nature makes each 84x84 Atari frame stack one token (on Pong's "
            "frames the loss then falls close behind the CNN specialist's, where 16-pixel "
            "patches stall; docs/control_learning.md), and every other image too; "
            "GatoConfig.patch_size"
        },
    )
    frame_group: int = field(
        default=0,
        metadata={
            "help": "G > 0: each control observation image of G x G patches (5 for an 84x84 "
            "Atari stack cut at 16 pixels) enters the model as one position, read whole by the "
            "Nature DQN's convolutions, while captions' and questions' images keep their patch "
            "tokens (on Pong a transformer reading 25 patch tokens stalls where one frame "
            "token learns; docs/control_learning.md). 0: every image as patches, as Gato; "
            "GatoConfig.frame_group"
        },
    )
    frame_differences: bool = field(
        default=False,
        metadata={
            "help": "with --frame_group: the frame encoder also reads the differences between "
            "consecutive frames of each stack, so what moved (Pong's ball) stands out from the "
            "still background; GatoConfig.frame_differences"
        },
    )
    action_head_skip: bool | None = field(
        default=None,
        metadata={
            "help": "the grouped action head also reads the observation's input embedding "
            "through a linear map, a path around the blocks that captions, VQA and text move "
            "(GatoConfig.action_head_skip). Default: on wherever actions are grouped, off under "
            "--encoding values (no grouped head; asking for it there is refused). The main job: "
            "pendulum 100.2% / 95.6% of expert on seeds 0 / 1 with it, "
            "72.2% / 32.5% without (docs/control_learning.md, 'A path around the blocks')"
        },
    )
    block_lr_scale: float = field(
        default=0.5,
        metadata={
            "help": "the transformer blocks' learning rate as a share of --learning_rate "
            "(embeddings, encoders and heads keep the whole rate); below 1 lets a value encoder "
            "learn before the blocks move under it. The main job: 0.5 (with the demo's captions at "
            "2.5) writes 57.5% of held-out captions exactly against 32.0% at 0.3 (one thread, "
            "docs/captions.md, 'The relations clause'); 0.3 cloned every state-based control task "
            "and answered VQA as well as 1.0 did; 0.1 leaves VQA at its blind baseline "
            "(docs/control_learning.md); 1.0 with --action_head_skip: new scenes 78.5% on seed 1 "
            "but pendulum 35.6% and held-out captions 20.0% on seed 0 (docs/captions.md)"
        },
    )
    block_lr_scale_from: int | None = field(
        default=0,
        metadata={
            "help": "the step from which --block_lr_scale applies, the blocks at the whole rate "
            "before it; none: the step the recipe's first control source starts (0 without "
            "one). The demo with none: its one-object lesson at the whole rate, shape words "
            "91% against 46% and VQA up to +22 points, but pendulum at 54-61% and the swing-up "
            "at 59-97% of expert, and a second seed that learnt neither (docs/captions.md)"
        },
    )
    mixture: str = field(
        default="demo", metadata={"help": "mixture recipe: a name in data/mixtures/ or a path"}
    )
    steps: int = field(
        default=3300,
        metadata={
            "help": "optimizer steps (the demo: 400 of one-object captions, then 2,900 of its "
            "whole mixture; data/mixtures/demo.toml)"
        },
    )
    global_batch: int = field(
        default=16,
        metadata={"help": "sequences per optimizer step, over processes and accumulation"},
    )
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    context: int | None = field(
        default=256,
        metadata={"help": "tokens per sequence (None: the preset's context, 1024 as Gato)"},
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "peak learning rate (default: scaled to the preset)"}
    )
    warmup_steps: int | None = field(
        default=None,
        metadata={"help": "linear warmup steps (default: steps // 40, at least 1, at most 15k)"},
    )
    ema_decay: float = field(
        default=0.0,
        metadata={
            "help": "keep an exponential moving average of the weights with this decay per "
            "step and save it as the checkpoint's model (the training weights stay in its "
            "state, for resuming); 0: save the weights as trained. A behaviour clone's closed-loop "
            "score swings between late steps while its loss falls: alone, the swing-up's clone "
            "ended at 85-100% of expert over four seeds averaged (0.999) against 33-100% "
            "(docs/control_learning.md)"
        },
    )
    final_lr_ratio: float = field(
        default=0.1, metadata={"help": "the decay ends at this fraction of the peak (Gato: 10x)"}
    )
    lr_schedule: str = field(
        default="wsd",
        metadata={
            "help": "after the warmup: wsd, the peak held until the last --lr_decay_fraction of "
            "the steps, then a linear decay; cosine, a cosine decay over the run (Gato). In the "
            "demo's budget wsd wrote 67.0-67.5% of held-out captions where the cosine wrote "
            "40.5-57.5% (two seeds), control unchanged (docs/captions.md)"
        },
    )
    lr_decay_fraction: float = field(
        default=0.2, metadata={"help": "wsd: the share of the steps over which the rate decays"}
    )
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay"})
    beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    beta2: float = field(default=0.95, metadata={"help": "AdamW beta2 (Gato: 0.95)"})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    grad_clip: float = field(default=1.0, metadata={"help": "global gradient-norm clip (0: off)"})
    action_dropout: float = field(
        default=1.0,
        metadata={
            "help": "probability of hiding each action token of the context in training, so the "
            "policy reads observations rather than copying its last action (mask_actions); 1.0 "
            "hides every action and the run's policy then hides them too (the model records it: "
            "GatoConfig.hide_context_actions). A grouped model's eight-timestep pendulum clone: "
            "45-48% of expert with none, 67% at 0.9, 78% at 1.0; the main job's pendulum: -0.3%, "
            "12.5%, 18.9% (docs/control_learning.md)"
        },
    )
    text_dropout: float = field(
        default=0.3,
        metadata={
            "help": "probability of hiding each text token that is a target (caption, answer, "
            "prose) from the input in training, its target kept (mask_text): the words before a "
            "shape then cannot stand in for the image. Captions alone, 2,000 steps: held-out "
            "colour-shape pairs 5.5% exact with 0, 29.5-37.0% with 0.3 (docs/captions.md)"
        },
    )
    isolate_packed: bool = field(
        default=True,
        metadata={
            "help": "each sequence packed into a row (a control window, an image-text pair) "
            "attends only to itself and the row's prompt, numbered as if alone, as at inference "
            "(MixtureConfig.isolate_packed). The main job, seed 0: held-out captions 0.0% -> "
            "32.0% exact, VQA 44.0% -> 59.0% (docs/captions.md). false: every token sees the "
            "whole row before it (Gato's rows; the previous default)"
        },
    )
    control_window_steps: int = field(
        default=1,
        metadata={
            "help": "control rows: windows of at most this many timesteps, each of a random "
            "episode, as many as fit the context (MixtureConfig.control_window_steps); the run's "
            "policy then keeps this many minus one past timesteps. A long history lets a clone "
            "fit the expert and act worse: the main job's pendulum went from 18.9% to 49.4% of "
            "expert with 8, and a clone of one timestep is what the benchmark measures "
            "(docs/control_learning.md). 0: one window filling the context (Gato)"
        },
    )
    prompt_probability: float = field(
        default=0.25,
        metadata={
            "help": "share of control rows preceded by a demonstration prompt from another "
            "episode of the task (Gato: 0.25; MixtureConfig.prompt_probability); 0 trains "
            "unprompted rows only"
        },
    )
    pairs_per_sequence: int = field(
        default=5,
        metadata={
            "help": "image-text pairs per captioning or VQA sequence, fewer where they do not fit "
            "(Gato: 5; MixtureConfig.pairs_per_sequence); 0 packs as many as the context holds"
        },
    )
    mixed_precision: str = field(
        default="auto",
        metadata={"help": "no, bf16, fp16, or auto (bf16 on a GPU or a CPU with bf16 units)"},
    )
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in backward to save memory"}
    )
    seed: int = field(default=0, metadata={"help": "seed for weights, data order and sampling"})
    output_dir: str = field(
        default="runs/gato",
        metadata={"help": "run folder (a relative one is under the home: $GATO_HOME or --home)"},
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "token cache folder (default <home>/data/cache/tokens)"},
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "read the recipe's control sources as streams (Parquet shards, hub configs, "
            "Minari; tokenized as batches are made) instead of from the token cache; every source "
            "must be a control source (gato.data.mixture.StreamingMixture)"
        },
    )
    stream_workers: int = field(
        default=0,
        metadata={
            "help": "--streaming: DataLoader worker processes reading and tokenizing the stream "
            "(0: in the training process); a resumed run needs the same number"
        },
    )
    log_every: int = field(default=10, metadata={"help": "steps between log lines"})
    report_to: str = field(
        default="tensorboard",
        metadata={"help": "where metrics go besides metrics.jsonl: tensorboard, wandb or none"},
    )
    checkpoint_every: int = field(default=500, metadata={"help": "steps between checkpoints"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept on disk"})
    resume: bool = field(default=False, metadata={"help": "continue the run in output_dir"})
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "start a new run from these weights (a model, checkpoint or run folder, or a "
            "hub id): not their optimizer, schedule or data position; the model's shape is the "
            "checkpoint's (--preset then only sets the default learning rate)"
        },
    )
    freeze_embedding: bool = field(
        default=False,
        metadata={
            "help": "keep the input embedding fixed (token table and tied output head, value "
            "function, patch encoder, position tables)"
        },
    )
    train_last_blocks: int | None = field(
        default=None,
        metadata={"help": "train only the last N decoder blocks, the others frozen (None: all)"},
    )
    cpu: bool = field(default=False, metadata={"help": "train on the CPU even with a GPU"})

    PRESET_LEARNING_RATES = {"tiny": 2e-3, "79m": 3e-4, "364m": 2e-4, "1.18b": 1e-4}

    def __post_init__(self) -> None:
        from gato.modeling.config import (
            ENCODINGS,
            NATURE_MIN_SIDE,
            PATCH_ENCODERS,
            PRESETS,
            VALUE_EMBEDDING_INITS,
            check_frame_group,
        )

        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; presets: {sorted(PRESETS)}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; encodings: {sorted(ENCODINGS)}")
        for name in ("steps", "global_batch", "grad_accum", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(
                f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}"
            )
        check_report_to(self.report_to)
        if not isinstance(self.isolate_packed, bool):
            raise ValueError(f"isolate_packed must be a bool, got {self.isolate_packed!r}")
        steps = self.control_window_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"control_window_steps must be an int >= 0, got {steps!r}")
        if not 0 <= self.action_dropout <= 1:
            raise ValueError(f"action_dropout must be in [0, 1], got {self.action_dropout}")
        if not 0 <= self.prompt_probability <= 1:
            raise ValueError(f"prompt_probability must be in [0, 1], got {self.prompt_probability}")
        if isinstance(self.pairs_per_sequence, bool) or not isinstance(
            self.pairs_per_sequence, int
        ):
            raise ValueError(f"pairs_per_sequence must be an int, got {self.pairs_per_sequence!r}")
        if self.pairs_per_sequence < 0:
            raise ValueError(
                "pairs_per_sequence must be >= 0 (0: as many as fit), got "
                f"{self.pairs_per_sequence}"
            )
        if not 0 <= self.text_dropout < 1:
            raise ValueError(f"text_dropout must be in [0, 1), got {self.text_dropout}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 < self.final_lr_ratio <= 1:
            raise ValueError(f"final_lr_ratio must be in (0, 1], got {self.final_lr_ratio}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 < self.lr_decay_fraction <= 1:
            raise ValueError(f"lr_decay_fraction must be in (0, 1], got {self.lr_decay_fraction}")
        if self.action_head_skip is not None and not isinstance(self.action_head_skip, bool):
            raise ValueError(
                f"action_head_skip must be true or false, got {self.action_head_skip!r}"
            )
        if self.action_head_skip and self.encoding == "values":
            raise ValueError(
                "action_head_skip needs grouped actions: pass --encoding grouped_z (or grouped)"
            )
        if self.patch_encoder not in PATCH_ENCODERS:
            raise ValueError(
                f"patch_encoder must be one of {PATCH_ENCODERS}, got {self.patch_encoder!r}"
            )
        if isinstance(self.patch_size, bool) or not isinstance(self.patch_size, int):
            raise ValueError(f"patch_size must be an integer, got {self.patch_size!r}")
        if self.patch_size < 4 or self.patch_size % 4:
            raise ValueError(f"patch_size must be a positive multiple of 4, got {self.patch_size}")
        if self.patch_encoder == "nature" and self.patch_size < NATURE_MIN_SIDE:
            raise ValueError(
                f"patch_encoder nature needs patch_size >= 36 (84: one token per Atari frame), "
                f"got {self.patch_size}"
            )
        check_frame_group(self.frame_group, self.patch_size, differences=self.frame_differences)
        if self.value_embedding_init not in VALUE_EMBEDDING_INITS:
            raise ValueError(
                f"value_embedding_init must be normal or smooth, got {self.value_embedding_init!r}"
            )
        if self.learning_rate is None:
            self.learning_rate = self.PRESET_LEARNING_RATES.get(self.preset, 3e-4)
        if self.warmup_steps is None:
            self.warmup_steps = min(15_000, max(1, self.steps // 40))
        if self.train_last_blocks is not None and self.train_last_blocks < 0:
            raise ValueError(f"train_last_blocks must be >= 0, got {self.train_last_blocks}")
        if self.stream_workers < 0:
            raise ValueError(f"stream_workers must be >= 0, got {self.stream_workers}")
        if self.stream_workers and not self.streaming:
            raise ValueError(
                f"stream_workers={self.stream_workers} applies to --streaming only; add "
                "--streaming true or leave it out"
            )
        if not self.block_lr_scale > 0:
            raise ValueError(f"block_lr_scale must be positive, got {self.block_lr_scale}")
        start = self.block_lr_scale_from
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
            raise ValueError(f"block_lr_scale_from must be a step (an int) or None, got {start!r}")
        if start is not None and start < 0:
            raise ValueError(f"block_lr_scale_from must be >= 0, got {start}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.streaming and self.control_window_steps:
            # A stream cuts each episode into consecutive windows: short ones side by side in a
            # row would show the long history they are meant to hide.
            raise ValueError(
                f"control_window_steps={self.control_window_steps} needs token caches (rows of "
                "windows of random episodes); with --streaming pass --control_window_steps 0"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    MODEL_OPTIONS = (
        "encoding",
        "patch_encoder",
        "patch_size",
        "frame_group",
        "frame_differences",
        "value_embedding_init",
        "action_head_skip",
    )
    """The fields that shape a fresh model (a checkpoint's own config decides them otherwise)."""

    def model_options_set(self) -> dict[str, Any]:
        """The `MODEL_OPTIONS` set away from their defaults: {field: value}."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {k: getattr(self, k) for k in self.MODEL_OPTIONS if getattr(self, k) != defaults[k]}

    @property
    def uses_action_head_skip(self) -> bool:
        """`action_head_skip` as the run uses it: when not asked, on wherever actions are
        grouped (every encoding but `values`)."""
        if self.action_head_skip is None:
            return self.encoding != "values"
        return self.action_head_skip

    def identity(self) -> dict[str, Any]:
        """The fields that make two runs the same run (not how long or how it is logged)."""
        keep = ("preset", "mixture", "global_batch", "context", "learning_rate", "seed")
        identity = {k: getattr(self, k) for k in keep}
        if self.init_from:  # absent otherwise, so runs recorded before the field still resume
            identity["init_from"] = self.init_from
        if self.encoding != "values":  # runs recorded before the field used one token per value
            identity["encoding"] = self.encoding
        if self.patch_encoder != "resnet":  # runs recorded before the field used the ResNet
            identity["patch_encoder"] = self.patch_encoder
        if self.patch_size != 16:  # runs recorded before the field cut 16-pixel patches
            identity["patch_size"] = self.patch_size
        if self.frame_group:  # runs recorded before the field read every image as patches
            identity["frame_group"] = self.frame_group
        if self.frame_differences:  # runs recorded before the field read the stack alone
            identity["frame_differences"] = True
        if self.uses_action_head_skip:  # runs recorded before the field had no path around
            identity["action_head_skip"] = True
        if self.ema_decay:  # a resumed run restores the average it was saving
            identity["ema_decay"] = self.ema_decay
        if self.block_lr_scale != 1.0:  # runs recorded before the field trained blocks at 1
            identity["block_lr_scale"] = self.block_lr_scale
        if self.block_lr_scale_from != 0:  # runs recorded before the field scaled from step 0
            identity["block_lr_scale_from"] = self.block_lr_scale_from
        if self.lr_schedule != "cosine":  # runs recorded before the field decayed by cosine
            identity["lr_schedule"] = self.lr_schedule
            identity["lr_decay_fraction"] = self.lr_decay_fraction
        if self.isolate_packed:  # runs recorded without the field saw the whole row
            identity["isolate_packed"] = True
        if self.streaming:  # a stream's saved position is only valid for the same split of it
            identity["streaming"] = True
            identity["stream_workers"] = self.stream_workers
        return identity
