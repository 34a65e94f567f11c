"""Loading a checkpoint for deployment: model, checkpoint and run folders, with clear errors.

`load_pretrained` accepts a `save_pretrained` folder, a training checkpoint (`step-N/`, whose
`model/` it verifies against the checkpoint's manifest), a run folder (`checkpoints/latest`) or a
Hugging Face hub id (`owner/name`, fetched with `huggingface_hub.snapshot_download`; with
`HF_HUB_OFFLINE=1` only the local hub cache is read); errors (`CheckpointError`) name what is
missing or corrupt.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from gato.checkpoints import (
    CHECKPOINTS,
    CheckpointError,
    has_manifest,
    read_latest,
    verify_checkpoint,
)
from gato.files import home_path
from gato.modeling.config import GatoConfig
from gato.modeling.model import GatoModel
from gato.tokens.tokenizer import GatoTokenizer

__all__ = ["CheckpointError", "load_pretrained", "resolve_model_dir", "task_tokenizer"]


# ---------------------------------------------------------------------------------------------
# Loading a checkpoint
# ---------------------------------------------------------------------------------------------


def resolve_model_dir(path: str | Path) -> Path:
    """The `save_pretrained` folder behind `path`.

    `path` may be the model folder itself (holds `config.json`), a training checkpoint
    (`<run>/checkpoints/step-N`, holds `model/`), a run's `checkpoints/` folder or the run folder
    (`checkpoints/latest` names the newest checkpoint). A relative path that does not exist here
    is tried under the home (`gato.files.gato_home`, where relative run folders are written); a
    path that exists nowhere and looks like a hub id (`owner/name`) is downloaded, or read from
    the hub cache.
    """
    root = Path(path).expanduser()
    if not root.exists() and not root.is_absolute() and home_path(root).exists():
        root = home_path(root)
    if not root.exists() and _looks_like_hub_id(str(path)):
        root = _hub_snapshot(str(path))
    if not root.exists():
        raise CheckpointError(f"checkpoint {root} does not exist")
    if not root.is_dir():
        raise CheckpointError(f"checkpoint {root} is a file; expected a model or run folder")
    if (root / "config.json").exists():
        return root
    if (root / "model").is_dir():
        return _model_folder(root / "model")
    for checkpoints in (root / CHECKPOINTS, root):
        target = read_latest(checkpoints)
        if target is not None:
            return _model_folder(target / "model")
    raise CheckpointError(
        f"{root} is not a model folder (no config.json), a training checkpoint (no model/) or a "
        "run folder (no checkpoints/latest)"
    )


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _looks_like_hub_id(text: str) -> bool:
    """`owner/name` with the hub's characters (not `./x`, `/x`, `a/b/c` or `~/x`)."""
    return bool(_HUB_ID.match(text)) and ".." not in text


def _hub_snapshot(repo_id: str) -> Path:
    """The local folder of a hub model repository: downloaded, or from the cache when offline."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo_id, repo_type="model"))
    except Exception as err:  # offline without a cached copy, unknown repo, no network
        raise CheckpointError(
            f"{repo_id!r} is neither a local folder nor a hub model that can be fetched ({err})"
        ) from None


def _model_folder(folder: Path) -> Path:
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{folder} has no config.json: the checkpoint is incomplete")
    return folder


def _verify_model_files(model_dir: Path) -> None:
    """Check the model's files against the training checkpoint's manifest, when there is one
    (the optimizer state beside them is not read, so not checked)."""
    if model_dir.name == "model" and has_manifest(model_dir.parent):
        verify_checkpoint(model_dir.parent, under="model/")


def load_pretrained(
    path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[GatoModel, GatoTokenizer]:
    """The model (eval mode) and its tokenizer from a model, checkpoint or run folder.

    The text model is the folder's `*.model` SentencePiece file when it has one, else the
    project's default. Raises `CheckpointError` naming the problem: a missing folder, a missing or
    unreadable config, weights that do not load or do not cover the model.
    """
    from gato.modeling.config import GatoConfig

    model_dir = resolve_model_dir(path)
    _verify_model_files(model_dir)
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{model_dir}/config.json is corrupt ({err})") from None
    if config.get("model_type") != GatoConfig.model_type:
        raise CheckpointError(
            f"{model_dir} holds a {config.get('model_type')!r} model, not a gato model"
        )
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        raise CheckpointError(f"{model_dir} has no weights (*.safetensors)")
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a bar per load would clutter the evaluation's output
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = GatoModel.from_pretrained(
                model_dir, output_loading_info=True, dtype=dtype or torch.float32
            )
    except Exception as err:  # transformers and safetensors raise many types; name the folder
        raise CheckpointError(f"{model_dir}: the weights cannot be loaded ({err})") from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if k != "lm_head.weight"]
    if missing:
        raise CheckpointError(
            f"{model_dir}: the weights lack {len(missing)} tensors of the model "
            f"(e.g. {sorted(missing)[:3]}): not a checkpoint of this architecture"
        )
    model.eval()
    if device is not None:
        model.to(device)
    text_models = sorted(model_dir.glob("*.model"))
    tokenizer = GatoTokenizer.from_config(
        model.config, text_model_path=text_models[0] if text_models else None
    )
    return model, tokenizer


def _has_continuous(task: Any) -> bool:
    """Whether `task` (a `TaskSpec`, or an id looked up in the registry) has continuous
    observations to standardise; True for an id the registry does not know: it may have."""
    if isinstance(task, str):
        from gato.tasks.registry import UnknownTaskError, get_task

        try:
            task = get_task(task)
        except UnknownTaskError:
            return True
    return "continuous_observations" in task.observation


def task_tokenizer(tokenizer: GatoTokenizer, config: GatoConfig, task: Any) -> GatoTokenizer:
    """`tokenizer` as training tokenized `task`'s observations (`task`: a `TaskSpec` or its id):
    standardised by the statistics `config` recorded for it, if any. A model trained on
    standardised observations that has none for `task` (a task it never trained on) is warned
    about: its observations then reach it as they come, on another scale than any it learnt. A
    task without continuous observations (an Atari game's frames) has nothing to standardise."""
    task_id = task if isinstance(task, str) else task.id
    stats = config.task_statistics(task_id)
    if stats is None and config.standardize_observations and _has_continuous(task):
        warnings.warn(
            f"the model reads standardised observations but has no statistics for {task_id!r} "
            f"(it has them for {sorted(config.observation_statistics or {})}); its observations "
            "are tokenized as they come",
            stacklevel=2,
        )
    return tokenizer.standardising(stats)
