"""Pretraining on a mixture with `accelerate`: one loop for one CPU, one GPU, many GPUs and nodes.

Data parallelism without a distributed sampler: every process draws the same global batch from
the same seeded mixture and keeps its own rows. Sampling from the token cache costs little next to
a training step, and it makes the run's data independent of the number of processes: one process
and two processes see the same global batches, and a resumed run sees the batches it would have.

The loss of a global batch is Gato's mean over its target tokens. Each micro-batch contributes its
summed token losses divided by the global batch's target count (known to every process without
communication), times the number of processes because data-parallel gradients are averaged; so
the gradient is the same whatever the split across processes and accumulation steps.

Checkpoints live in `<output_dir>/checkpoints/step-XXXXXXXX/`: `model/` is a `save_pretrained`
folder (safetensors, config, text model, model card; with `--ema_decay`, the weights' moving
average) and `state/` is `accelerate`'s training state (the training weights, optimizer,
scheduler, RNG of every process, the average) plus the sampler's position. Each is written to a
temporary folder and renamed into place, then `latest` is replaced atomically: a crash at any
moment leaves the previous good checkpoint, and `--resume` never reads a partial one. The folder
format (manifest, `latest`, step names) is `gato.checkpoints`'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gato.checkpoints import (
    CHECKPOINTS,
    latest_checkpoint,
    prune,
    publish,
    step_name,
    verify_checkpoint,
    write_latest,
    write_manifest,
)
from gato.cli import parse
from gato.files import atomic_write_text, home_path
from gato.tokens.batch import GatoBatch, mask_actions, mask_text
from gato.training.config import TrainConfig
from gato.training.init_from import (
    apply_freeze,
    check_compatible,
    check_local_positions,
    check_model_options,
    load_initial_model,
)
from gato.training.model_card import model_card, task_family, tokens_trained
from gato.training.schedule import block_lr_factor, learning_rate_factor, parameter_groups


def _has_bf16(cpu_only: bool) -> bool:
    """bf16 autocast pays on a GPU and on CPUs with bf16 instructions (1.4x on this project's
    CPU machines, benchmarks/RESULTS.md); elsewhere it would be emulated, slower than fp32."""
    if torch.cuda.is_available() and not cpu_only:
        return True
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def is_main_launch() -> bool:
    """True in the process that should do once-per-run work before the process group forms."""
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class StepLog:
    """One optimizer step, as written to `metrics.jsonl`."""

    step: int
    loss: float
    learning_rate: float
    tokens: int
    seconds: float
    family_loss: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Holds the accelerator, model, optimizer, schedule and data for one run.

    `data` yields `MixtureBatch`es of the global batch size (a `gato.data.mixture.MixtureLoader`,
    or anything with `__next__`, `state_dict()` and `load_state_dict(state)`); by default the
    loader of the mixture named in the config.
    """

    def __init__(
        self, config: TrainConfig, data: Any = None, command: str | None = None, recipe: Any = None
    ) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        from gato.modeling.config import ENCODINGS, GatoConfig
        from gato.modeling.model import GatoModel

        self.config = config
        self.command = command or " ".join(sys.argv)
        self.recipe = recipe  # the run's `ResolvedRecipe`, when the caller resolved it already
        if data is None:
            from gato.data.mixture import resolve_recipe

            # An unknown recipe or task fails before anything starts.
            self.recipe = resolve_recipe(recipe if recipe is not None else config.mixture)
        # A relative run folder is under the home ($GATO_HOME; the checkout when run from one).
        self.output_dir = home_path(config.output_dir)
        precision = config.mixed_precision
        if precision == "auto":
            precision = "bf16" if _has_bf16(config.cpu) else "no"
        # accelerate keeps the precision in process-wide state that a later Accelerator may not
        # change: clear it (not the distributed state) so that every Trainer of a process, e.g.
        # a model then its baseline, or tests in any order, trains with its own setting.
        AcceleratorState._reset_state(reset_partial_state=False)
        # Without a GPU, accelerate only forms a multi-process (gloo) group when told it is on
        # the CPU; otherwise torchrun's processes would each train alone.
        self.accelerator = Accelerator(
            cpu=config.cpu or not torch.cuda.is_available(),
            mixed_precision=precision,
            log_with=None if config.report_to == "none" else config.report_to,
            project_dir=str(self.output_dir),
            # A micro-batch without images (or without observations) leaves the patch block
            # (or the local position table) out of its graph: DDP must not wait for them.
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        world = self.accelerator.num_processes
        if config.global_batch % (world * config.grad_accum):
            raise ValueError(
                f"global_batch={config.global_batch} does not divide into {world} processes x "
                f"{config.grad_accum} accumulation steps"
            )
        for entry in self.recipe.recipe.sources if self.recipe is not None else ():
            if entry.batch_rows and entry.batch_rows % (world * config.grad_accum):
                raise ValueError(
                    f"source {entry.task!r}: batch_rows={entry.batch_rows} does not divide into "
                    f"{world} processes x {config.grad_accum} accumulation steps"
                )
        self._check_output_dir()

        set_seed(config.seed)
        if config.init_from:
            # Weights only: the optimizer, schedule and data position start afresh below.
            model, text_model = load_initial_model(config.init_from, context=config.context)
            check_compatible(model.config, text_model, config.init_from)
            check_model_options(model.config, config.init_from, config.model_options_set())
            self.model_config = model.config
        else:
            from gato.tokens.text_model import load_text_model

            self.model_config = GatoConfig.from_preset(
                config.preset,
                # The head writes the text model's pieces only (GatoConfig.text_vocab_size).
                text_vocab_size=load_text_model().get_piece_size(),
                value_embedding_init=config.value_embedding_init,
                patch_encoder=config.patch_encoder,
                patch_size=config.patch_size,
                frame_group=config.frame_group,
                frame_differences=config.frame_differences,
                action_head_skip=config.uses_action_head_skip,
                **ENCODINGS[config.encoding],
            )
            if config.context is not None:
                self.model_config.max_position_embeddings = config.context
            model = GatoModel(self.model_config)
        self.context = self.model_config.max_position_embeddings
        if self.model_config.frame_group and self.recipe is not None:
            _warn_frames_left_as_patches(self.recipe, self.model_config)
        # The policy of a model that never saw an action in its context must hide them too; a
        # fine-tuning run that shows some actions again makes a model that reads them.
        self.model_config.hide_context_actions = config.action_dropout == 1.0
        # Act from the view training gave: the current timestep and W - 1 before it.
        steps = config.control_window_steps
        self.model_config.policy_history_steps = steps - 1 if steps else None
        if config.freeze_embedding or config.train_last_blocks is not None:
            apply_freeze(model, config.freeze_embedding, config.train_last_blocks)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        # Fused: one kernel over all parameters. On the CPU the per-parameter AdamW took ~4x
        # as long (13 against 57 ms for a tiny model's 5M parameters, one thread), most of a
        # grouped control step (benchmarks/grouped_encoding.py).
        groups = parameter_groups(
            model, config.weight_decay, config.block_lr_scale, config.learning_rate
        )
        # A block group carries its own (scaled) "lr"; read before the optimizer gives every
        # group one.
        in_block = ["lr" in group for group in groups]
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=config.learning_rate,
            betas=(config.beta1, config.beta2),
            eps=config.eps,
            fused=True,
        )

        def factor(step: int) -> float:
            return learning_rate_factor(
                step, config.warmup_steps, config.steps, config.final_lr_ratio,
                config.lr_schedule, config.lr_decay_fraction,
            )  # fmt: skip

        scale_from = config.block_lr_scale_from
        if scale_from is None:
            start = self.recipe.control_from_step if self.recipe is not None else None
            scale_from = start or 0
        self.block_lr_scale_from = scale_from

        def block_factor(step: int) -> float:
            return factor(step) * block_lr_factor(step, config.block_lr_scale, scale_from)

        # Before --block_lr_scale_from the block groups are scaled back to the whole rate.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, [block_factor if block else factor for block in in_block]
        )
        if config.compile:
            model = torch.compile(model)
        # The scheduler stays unprepared: accelerate would step it once per process.
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)
        # The average is of the bare model on its device (every process holds the same one) and
        # is what a checkpoint's model/ holds; it is saved with the state so that a resumed run
        # goes on averaging where it stopped.
        self.average = None
        if config.ema_decay:
            self.average = AveragedModel(
                self._bare_model(),
                multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),
                use_buffers=True,
            )
            # One config for both: what the run records in it later (the data's observation
            # statistics) must reach the saved average too.
            self.average.module.config = self.model_config
            self.accelerator.register_for_checkpointing(self.average)
        self.data = data if data is not None else self._default_data()
        self.step = 0

    # -- setup ---------------------------------------------------------------------------------

    def _default_data(self) -> Any:
        from gato.data.mixture import Mixture, MixtureConfig
        from gato.modeling.config import check_statistics_record
        from gato.tokens.tokenizer import GatoTokenizer

        extra = {"cache_root": self.config.cache_dir} if self.config.cache_dir else {}
        config = MixtureConfig(
            context_length=self.context,
            batch_size=self.config.global_batch,
            seed=self.config.seed,
            control_window_steps=self.config.control_window_steps,
            prompt_probability=self.config.prompt_probability,
            pairs_per_sequence=self.config.pairs_per_sequence,
            isolate_packed=self.config.isolate_packed,
            **extra,
        )
        if self.config.streaming:
            return self._streaming_data(config)
        # The main process builds missing token caches; the others then map its files.
        standardize = self.model_config.standardize_observations
        with self.accelerator.main_process_first():
            mixture = Mixture(
                self.recipe,
                config,
                tokenizer=GatoTokenizer.from_config(self.model_config),
                progress=self.accelerator.is_main_process,
                standardize=standardize,
                # A pretrained model's tasks keep the statistics it learnt them with.
                observation_statistics=check_statistics_record(
                    self.model_config.observation_statistics or {}
                ),
            )
        if standardize:
            # Recorded in the checkpoint: acting tokenizes observations as training did.
            self.model_config.observation_statistics = {
                **(self.model_config.observation_statistics or {}),
                **{n: s.to_dict() for n, s in mixture.observation_statistics.items()},
            }
        if self.config.init_from:  # a pretrained model's position table is what it is
            check_local_positions(self.model_config, mixture.caches, list(mixture.source_names))
        return mixture.loader()

    def _streaming_data(self, config: Any) -> Any:
        """`--streaming`: the recipe's control sources read as streams, no token cache.

        Every process reads the whole stream (rank 0 of 1) and keeps its rows of each global
        batch, as it does from the cache: the data then stays independent of the number of
        processes, and the loss's global target count needs no communication. The DataLoader
        workers (`--stream_workers`) are what spread the reading and tokenizing.
        """
        from gato.data.mixture import StreamingMixture
        from gato.tokens.tokenizer import GatoTokenizer

        if self.model_config.standardize_observations:
            raise ValueError(
                "--streaming reads each episode once, where batches are made; standardised "
                "observations need each task's statistics first: train from the token cache "
                "(leave out --streaming) or pass --encoding grouped (or values), which read the "
                "values as they come"
            )

        try:
            mixture = StreamingMixture.from_recipe(
                self.recipe,
                config,
                tokenizer=GatoTokenizer.from_config(self.model_config),
                workers=self.config.stream_workers,
            )
        except ValueError as err:
            raise ValueError(f"--streaming, recipe {self.recipe.name!r}: {err}") from None
        return mixture.loader()

    def _check_output_dir(self) -> None:
        """Refuse to write over another run; `--resume` needs a run to continue."""
        run_file = self.output_dir / "run.json"
        if run_file.exists():
            previous = json.loads(run_file.read_text())
            if not self.config.resume:
                raise ValueError(
                    f"{self.output_dir} already holds a run (started with: "
                    f"{previous.get('command', '?')}); pass --resume to continue it or choose "
                    "another --output_dir"
                )
            if previous.get("identity") != self.config.identity():
                raise ValueError(
                    f"{self.output_dir} holds a different run: {previous.get('identity')} vs "
                    f"{self.config.identity()}; resume needs the same preset, mixture, batch, "
                    "context, learning rate, seed, encoding (a run recorded without one used "
                    "--encoding values), learning-rate schedule (one recorded without one "
                    "used --lr_schedule cosine) and streaming (with its stream_workers)"
                )
        elif self.config.resume:
            raise ValueError(f"--resume: {self.output_dir} holds no run to continue")

    # -- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write model + training state to a temporary folder, rename it, move `latest`."""
        acc = self.accelerator
        root = self.output_dir / CHECKPOINTS
        name = step_name(self.step)
        tmp = root / f".{name}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp / "state"), safe_serialization=True)
        acc.wait_for_everyone()  # every process has written its part before the rename
        if acc.is_main_process:
            (tmp / "state" / "data.json").write_text(json.dumps(self.data.state_dict()))
            model = self._bare_model() if self.average is None else self.average.module
            model.save_pretrained(tmp / "model", safe_serialization=True)
            self._write_model_assets(tmp / "model")
            write_manifest(tmp, {"step": self.step, "config": self.config.to_dict()})
            publish(tmp, root / name)
            write_latest(root, name)
            prune(root, keep=self.config.keep_checkpoints, current=name)
        acc.wait_for_everyone()
        return root / name

    def _bare_model(self) -> Any:
        """The model being trained, without accelerate's or torch.compile's wrappers."""
        model = self.accelerator.unwrap_model(self.model)
        return getattr(model, "_orig_mod", model)

    def _write_model_assets(self, folder: Path) -> None:
        from gato.tokens.text_model import default_text_model_path

        text_model = default_text_model_path()
        shutil.copy2(text_model, folder / text_model.name)
        tokens = tokens_trained(self.output_dir, self.step)
        card = model_card(self.config, self.command, self.step, tokens=tokens)
        (folder / "README.md").write_text(card)

    def load_checkpoint(self, folder: Path) -> None:
        manifest = verify_checkpoint(folder)
        self.accelerator.load_state(str(folder / "state"))
        self.data.load_state_dict(json.loads((folder / "state" / "data.json").read_text()))
        self.step = int(manifest["step"])

    # -- the loop ------------------------------------------------------------------------------

    def _local_rows(self, batch: GatoBatch, families: list[str]) -> list[tuple[GatoBatch, list]]:
        """This process's micro-batches of the global batch."""
        acc = self.accelerator
        # A recipe's own-batch source may size its batches otherwise (`batch_rows`).
        size, left = divmod(len(families), acc.num_processes * self.config.grad_accum)
        if left:
            raise ValueError(
                f"a batch of {len(families)} rows does not divide into {acc.num_processes} "
                f"processes x {self.config.grad_accum} accumulation steps"
            )
        out = []
        for micro in range(self.config.grad_accum):
            first = (micro * acc.num_processes + acc.process_index) * size
            rows = slice(first, first + size)
            out.append((batch.rows(rows), families[rows]))
        return out

    def train(self) -> list[StepLog]:
        """Run (or continue) to `config.steps`; returns this call's step logs."""
        from tqdm.auto import tqdm

        acc = self.accelerator
        cfg = self.config
        if cfg.resume:
            checkpoint = latest_checkpoint(self.output_dir)
            if checkpoint is None:
                raise ValueError(f"--resume: {self.output_dir} has no checkpoint yet")
            self.load_checkpoint(checkpoint)
        elif acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            run = {
                "command": self.command,
                "identity": cfg.identity(),
                "config": cfg.to_dict(),
                # What --block_lr_scale_from none (where the recipe starts control) came to.
                "block_lr_scale_from": self.block_lr_scale_from,
            }
            atomic_write_text(self.output_dir / "run.json", json.dumps(run, indent=2))
        if cfg.report_to != "none":
            # The project name is wandb's; tensorboard writes under project_dir/<name>.
            acc.init_trackers("gato" if cfg.report_to == "wandb" else "tensorboard")
        metrics_path = self.output_dir / "metrics.jsonl"
        logs: list[StepLog] = []
        bar = tqdm(
            total=cfg.steps, initial=self.step, disable=not acc.is_main_process, desc="train"
        )
        self.model.train()
        while self.step < cfg.steps:
            start = time.perf_counter()
            mixed = next(self.data)
            families = [task_family(mixed.source_names[int(i)]) for i in mixed.source_index]
            log = self._train_step(mixed.batch, families)
            log.seconds = time.perf_counter() - start
            self.step += 1
            log.step = self.step
            logs.append(log)
            if acc.is_main_process:
                with open(metrics_path, "a") as handle:
                    handle.write(json.dumps(dataclasses.asdict(log)) + "\n")
                bar.update(1)
                bar.set_postfix(loss=f"{log.loss:.3f}", tok_s=f"{log.tokens / log.seconds:,.0f}")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                values = {
                    "train/loss": log.loss,
                    "train/learning_rate": log.learning_rate,
                    "train/tokens_per_second": log.tokens / log.seconds,
                }
                values.update({f"loss/{k}": v for k, v in log.family_loss.items()})
                acc.log(values, step=self.step)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save_checkpoint()
        bar.close()
        if hasattr(self.data, "close"):
            self.data.close()
        acc.end_training()
        return logs

    def _train_step(self, batch: GatoBatch, families: list[str]) -> StepLog:
        acc = self.accelerator
        if self.config.action_dropout > 0:
            # Seeded by the step alone: every process hides the same tokens of the global batch,
            # and a resumed run hides what the uninterrupted one would have.
            generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step)
            batch = mask_actions(batch, self.config.action_dropout, generator)
        if self.config.text_dropout > 0:
            generator = torch.Generator().manual_seed(self.config.seed * 1_000_033 + self.step + 7)
            batch = mask_text(batch, self.config.text_dropout, generator)
        # Gato's loss: the mean over the global batch's targets, whatever the split.
        global_targets = int(batch.loss_mask[:, 1:].sum().clamp(min=1))
        scale = acc.num_processes / global_targets
        loss_sum = torch.zeros((), dtype=torch.float64)
        family_sums: dict[str, list[float]] = {}
        micro_batches = self._local_rows(batch, families)
        for index, (micro, rows) in enumerate(micro_batches):
            micro = micro.to(acc.device)
            last = index == len(micro_batches) - 1
            # Gradients are averaged across processes only on the last micro-batch.
            sync = contextlib.nullcontext() if last else acc.no_sync(self.model)
            with sync:
                out = self.model(**micro.as_dict())
                total = out.loss * out.num_loss_tokens  # this micro-batch's summed token loss
                acc.backward(total * scale)
            loss_sum += total.detach().double().cpu()
            sums = out.sequence_loss_sums.detach().double().cpu().tolist()
            counts = out.sequence_loss_counts.cpu().tolist()
            for name, s, n in zip(rows, sums, counts, strict=True):
                entry = family_sums.setdefault(name, [0.0, 0.0])
                entry[0] += s
                entry[1] += n
        if self.config.grad_clip > 0:
            acc.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        learning_rate = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.average is not None:
            self.average.update_parameters(self._bare_model())
        # Every process knows the global batch's families: reduce one vector of sums and counts.
        names = sorted(set(families))
        totals = torch.tensor(
            [loss_sum.item()] + [family_sums.get(n, [0.0, 0.0])[i] for n in names for i in (0, 1)],
            dtype=torch.float64,
            device=acc.device,
        )
        totals = acc.reduce(totals, reduction="sum").cpu().tolist()
        family = {n: totals[1 + 2 * i] / max(totals[2 + 2 * i], 1.0) for i, n in enumerate(names)}
        return StepLog(
            step=self.step,
            loss=totals[0] / global_targets,
            learning_rate=learning_rate,
            tokens=int(batch.attention_mask.sum()),
            seconds=0.0,
            family_loss=family,
        )


def _warn_frames_left_as_patches(recipe: Any, model_config: Any) -> None:
    """Warn, naming them, about the recipe's control tasks whose observation images a frame
    group does not read whole (they train as patch tokens, where `--frame_group` was asked for
    frames)."""
    import warnings

    from gato.modeling.frames import frames_left_as_patches
    from gato.tasks.registry import UnknownTaskError, get_task

    sides = {}
    for source in recipe.sources:
        if source.kind != "control":
            continue
        try:
            spec = get_task(source.name).observation.get("image_observations")
        except UnknownTaskError:  # a dataset outside the registry: its shapes are not known
            continue
        if spec is not None:
            sides[source.name] = tuple(spec.shape[:2])
    group, size = model_config.frame_group, model_config.patch_size
    for task, (rows, cols) in frames_left_as_patches(sides, size, group).items():
        warnings.warn(
            f"--frame_group {group}: {task}'s images are cut into {rows}x{cols} patches of "
            f"{size} pixels, not {group}x{group}, so they train as patch tokens, not as frames",
            stacklevel=2,
        )


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Command line (and optionally `--config FILE.json|yaml`) -> `TrainConfig`."""
    return parse(TrainConfig, argv, description=TrainConfig.__doc__, config_file=True)


def main(argv: list[str] | None = None) -> list[StepLog]:
    config = parse_config(argv)
    trainer = Trainer(config)
    return trainer.train()


__all__ = ["StepLog", "Trainer", "is_main_launch", "main", "parse_config"]
