"""Starting a run from a pretrained model: its weights only, checked against the new run, and
optionally some of them frozen.

`--init_from` takes what `gato.policy.loading.load_pretrained` takes (a model, checkpoint or run
folder, or a hub id) and starts a *new* run from its weights: the optimizer, the learning-rate
schedule and the data position start afresh (that is `--resume`'s job, for the same run). The
mixture may hold tasks the checkpoint never saw: every task shares one vocabulary, so a new task
needs no new parameters. What must agree is what gives ids and positions their meaning: the id
table (`gato.vocab`), the SentencePiece model behind the text ids, the image patching, and
enough local positions for the new observations; `check_compatible` and `check_local_positions`
name what differs. The model's shape is the checkpoint's: a run option that would choose another
(`--encoding`, `--patch_encoder`, `--patch_size`, `--frame_group`, `--frame_differences`,
`--value_embedding_init`, `--action_head_skip` set away from their defaults) is refused by
`check_model_options` rather than silently ignored.

Freezing (the few-shot experiments of Gato fine-tune all weights; freezing is the cheaper
variant, and the ablation): `freeze_embedding` fixes the input embedding (the token table, and
so the tied output head, the value function, the patch encoder and the position tables);
`train_last_blocks=N` fixes every decoder block but the last N (the final norm stays trainable).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "IncompatibleCheckpointError",
    "apply_freeze",
    "check_compatible",
    "check_local_positions",
    "check_model_options",
    "load_initial_model",
]


class IncompatibleCheckpointError(ValueError):
    """The checkpoint cannot take the new run's data: the message names what differs."""


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load_initial_model(path: str | Path, context: int | None = None) -> tuple[Any, Path | None]:
    """The model (train mode, fp32) of a model, checkpoint or run folder or hub id, and the
    SentencePiece file it carries (None if it has none).

    `context` (the run's `--context`) replaces the model's context length: positions are rotary,
    so no parameter depends on it. Raises `gato.policy.CheckpointError` naming the problem when
    `path` is not a loadable checkpoint.
    """
    from gato.policy.loading import load_pretrained, resolve_model_dir

    model, _ = load_pretrained(path)
    model_dir = resolve_model_dir(path)
    text_models = sorted(model_dir.glob("*.model"))
    if context is not None:
        model.config.max_position_embeddings = context
    model.train()
    return model, (text_models[0] if text_models else None)


def check_compatible(model_config: Any, text_model: Path | None, where: str) -> None:
    """Raise `IncompatibleCheckpointError` when the checkpoint's ids mean something else here.

    `model_config` is the checkpoint's `GatoConfig`; `text_model` the SentencePiece file it
    carries. Compared with this toolkit's id table (`gato.vocab`) and the text model a run
    tokenizes with. (Patching and the value encoding follow the checkpoint's own config: the run
    tokenizes with it.)
    """
    from gato.tokens.text_model import default_text_model_path
    from gato.vocab import PADDED_VOCAB_SIZE

    if model_config.vocab_size != PADDED_VOCAB_SIZE:
        raise IncompatibleCheckpointError(
            f"--init_from {where}: the checkpoint's vocabulary has {model_config.vocab_size} ids "
            f"(vocab_size), this toolkit's id table {PADDED_VOCAB_SIZE}: ids would change meaning"
        )
    ours = default_text_model_path()
    if text_model is not None and _digest(text_model) != _digest(ours):
        raise IncompatibleCheckpointError(
            f"--init_from {where}: its text model {text_model.name} (sha256 {_digest(text_model)}) "
            f"differs from this run's {ours.name} (sha256 {_digest(ours)}): text ids would "
            f"change meaning; to train on with the checkpoint's, set GATO_TEXT_MODEL={text_model}"
        )


def check_model_options(model_config: Any, where: str, requested: dict[str, Any]) -> None:
    """Raise `IncompatibleCheckpointError` when a run asks for a model shape other than the
    checkpoint's.

    `requested` holds the run's model options (`TrainConfig` fields: `encoding`, `patch_encoder`,
    `patch_size`, `frame_group`, `frame_differences`, `value_embedding_init`, `action_head_skip`)
    that were set away from their defaults; an option at its default is not asked for, and the
    checkpoint's choice stands. One that was asked for must be what the checkpoint has, since
    its weights, not the option, decide the model; `value_embedding_init` only shapes fresh
    weights, so asking for it at all is refused.
    """
    from gato.modeling.config import ENCODINGS

    differs = []
    encoding = requested.get("encoding")
    if encoding is not None:
        theirs = next(
            (
                name
                for name, fields in ENCODINGS.items()
                if all(getattr(model_config, k) == v for k, v in fields.items())
            ),
            "none of ENCODINGS",
        )
        if theirs != encoding:
            differs.append(f"--encoding {encoding} (the checkpoint's: {theirs})")
    patch_encoder = requested.get("patch_encoder")
    if patch_encoder is not None and patch_encoder != model_config.patch_encoder:
        differs.append(
            f"--patch_encoder {patch_encoder} (the checkpoint's: {model_config.patch_encoder})"
        )
    patch_size = requested.get("patch_size")
    if patch_size is not None and patch_size != model_config.patch_size:
        differs.append(f"--patch_size {patch_size} (the checkpoint's: {model_config.patch_size})")
    frame_group = requested.get("frame_group")
    if frame_group is not None and frame_group != model_config.frame_group:
        differs.append(
            f"--frame_group {frame_group} (the checkpoint's: {model_config.frame_group})"
        )
    if "frame_differences" in requested and (
        requested["frame_differences"] != model_config.frame_differences
    ):
        differs.append(
            f"--frame_differences {requested['frame_differences']} (the checkpoint's: "
            f"{model_config.frame_differences})"
        )
    if "action_head_skip" in requested and (
        requested["action_head_skip"] != model_config.action_head_skip
    ):
        differs.append(
            f"--action_head_skip {requested['action_head_skip']} (the checkpoint's: "
            f"{model_config.action_head_skip})"
        )
    if "value_embedding_init" in requested:
        differs.append(
            f"--value_embedding_init {requested['value_embedding_init']} (an initialisation; "
            "the checkpoint's weights replace it)"
        )
    if differs:
        raise IncompatibleCheckpointError(
            f"--init_from {where}: the model is the checkpoint's, but the run asks for "
            f"{'; '.join(differs)}: drop the option or start from scratch"
        )


def check_local_positions(model_config: Any, caches: list[Any], names: list[str]) -> None:
    """Raise when a source's observations need more local positions than the model has.

    `caches` are the mixture's `TokenCache`s (their `local_positions` arrays), `names` their
    sources' names.
    """
    limit = model_config.max_local_positions
    too_long = []
    for cache, name in zip(caches, names, strict=True):
        positions = cache.maps["local_positions"]
        highest = int(positions.max()) if len(positions) else -1
        if highest >= limit:
            too_long.append(f"{name} needs {highest + 1}")
    if too_long:
        raise IncompatibleCheckpointError(
            f"--init_from: the model has {limit} local positions (max_local_positions), but "
            f"observations of {', '.join(too_long)}"
        )


def apply_freeze(model: torch.nn.Module, freeze_embedding: bool, last_blocks: int | None) -> int:
    """Set `requires_grad=False` on the frozen parameters; returns how many values stay
    trainable. Raises `ValueError` when `last_blocks` exceeds the model's blocks."""
    blocks = model.layers
    if last_blocks is not None:
        if not 0 <= last_blocks <= len(blocks):
            raise ValueError(
                f"train_last_blocks={last_blocks}: the model has {len(blocks)} decoder blocks"
            )
        for block in list(blocks)[: len(blocks) - last_blocks]:
            block.requires_grad_(False)
    if freeze_embedding:
        model.embedding.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise ValueError("the freeze options leave no parameter to train")
    return trainable
