"""How a dataset stores its continuous actions, and where that is recorded.

Tokens hold every continuous action on one scale, [-1, 1] mapped onto the task's action bounds
(`ActionSpec.bounds`). Datasets store actions on one of two scales (`gato.schema.ACTION_SCALES`):

- "unit": already in [-1, 1]. What `python -m gato.data collect` records (the environment
  adapters take [-1, 1] and rescale to the bounds themselves); it writes `action_scale = "unit"`
  into the dataset's metadata (`info.description`, JSON, beside the seeds and returns).
- "raw": the environment's own values. JAT's datasets (Meta-World values such as -19.8, Humanoid
  within +-0.4, Pusher within +-2) and Minari's are stored so.

`dataset_action_scale` reads the record; a dataset without one is taken as: "unit" when this
project collected it (before the key existed: its metadata says `created_by`), else "raw", the
convention of every dataset in JAT's schema made elsewhere. An explicit `override` (a source's
setting) beats both.
"""

from __future__ import annotations

import json
from typing import Any

from gato.schema import ACTION_SCALES, check_action_scale

__all__ = [
    "ACTION_SCALES",
    "ACTION_SCALE_KEY",
    "dataset_action_scale",
    "dataset_metadata",
    "with_action_scale",
]

ACTION_SCALE_KEY = "action_scale"
"""The metadata key that records a dataset's action scale."""
_OUR_COLLECTIONS = "python -m gato"
"""How `created_by` starts in the metadata of datasets this project wrote."""


def dataset_metadata(dataset: Any) -> dict[str, Any]:
    """The JSON object in a dataset's `info.description` ({} when there is none)."""
    try:
        meta = json.loads(dataset.info.description or "")
    except (AttributeError, TypeError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def dataset_action_scale(dataset: Any, override: str | None = None) -> str:
    """ "unit" or "raw": how `dataset` stores continuous actions (see the module docstring)."""
    if override is not None:
        return check_action_scale(override)
    meta = dataset_metadata(dataset)
    if ACTION_SCALE_KEY in meta:
        try:
            return check_action_scale(meta[ACTION_SCALE_KEY])
        except ValueError as err:
            raise ValueError(f"the dataset's metadata is wrong: {err}") from None
    if str(meta.get("created_by", "")).startswith(_OUR_COLLECTIONS):
        return "unit"
    return "raw"


def with_action_scale(dataset: Any, scale: str) -> Any:
    """`dataset` with `scale` recorded in its metadata (other keys kept); set in place on the
    dataset's info, which `save_to_disk` writes."""
    meta = dataset_metadata(dataset)
    meta[ACTION_SCALE_KEY] = check_action_scale(scale)
    dataset.info.description = json.dumps(meta)
    return dataset
