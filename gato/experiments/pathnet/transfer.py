"""Continual learning without forgetting on a PathNet-FFN `GatoModel` (what the paper does for
task B), and turning a trained dense model into a PathNet one.

1. train the generalist on its tasks with a pathway P0 (`gato.modeling.ffn.set_pathway`);
2. `freeze_pathway(model, P0)`: P0's modules are marked frozen (a saved buffer);
3. `new_task_parameters(model, P1)` for a pathway P1 with fresh modules (`fresh_pathway`): every
   shared weight (embeddings, attention, norms, head) and every frozen module stops training;
   only P1's unfrozen modules train on the new task.
The old tasks run P0 as before: none of the weights they read has changed, so their outputs,
losses and scores are bit-identical (tests/experiments/pathnet/test_pathnet_gato.py; `python -m
gato.experiments.pathnet gato`).

`from_dense` turns a trained dense generalist into a PathNet one computing the same function (up
to float summation order): a dense MLP is N modules summed, its hidden units split into N groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from gato.modeling.config import GatoConfig
from gato.modeling.ffn import (
    active_modules,
    check_genotype,
    module_size,
    pathnet_blocks,
    set_pathway,
)
from gato.modeling.model import GatoModel

__all__ = ["freeze_pathway", "fresh_pathway", "from_dense", "new_task_parameters"]


def freeze_pathway(model: nn.Module, genotype: Any) -> None:
    """Mark the pathway's modules frozen (saved with the model) and stop their gradients."""
    genotype = check_genotype(model, genotype)
    for block, row in zip(pathnet_blocks(model), active_modules(genotype), strict=True):
        for m in row:
            block.frozen[m] = True
            block.experts[m].requires_grad_(False)


def fresh_pathway(model: nn.Module, reuse: int = 0) -> np.ndarray:
    """A pathway for a new task: per block, `reuse` frozen modules (lowest indices) and
    N - reuse unfrozen ones (lowest indices). Raises `ValueError` if a block lacks them."""
    n = model.config.pathnet_active
    if not 0 <= reuse <= n:
        raise ValueError(f"reuse must lie in [0, N={n}], got {reuse}")
    rows = []
    for layer, block in enumerate(pathnet_blocks(model)):
        frozen = [m for m in range(block.num_modules) if bool(block.frozen[m])]
        free = [m for m in range(block.num_modules) if not bool(block.frozen[m])]
        if len(frozen) < reuse or len(free) < n - reuse:
            raise ValueError(
                f"block {layer} has {len(frozen)} frozen and {len(free)} unfrozen modules: "
                f"cannot reuse {reuse} and add {n - reuse} fresh ones (raise pathnet_modules)"
            )
        rows.append(frozen[:reuse] + free[: n - reuse])
    return np.asarray(rows, dtype=np.int64)


def new_task_parameters(model: nn.Module, genotype: Any) -> list[nn.Parameter]:
    """Prepare a new task on `genotype`: freeze every parameter of the model except the
    pathway's unfrozen modules, set the pathway, and return those modules' parameters."""
    genotype = check_genotype(model, genotype)
    model.requires_grad_(False)
    params: list[nn.Parameter] = []
    for block, row in zip(pathnet_blocks(model), active_modules(genotype), strict=True):
        for m in row:
            if not bool(block.frozen[m]):
                block.experts[m].requires_grad_(True)
                params.extend(block.experts[m].parameters())
    if not params:
        raise ValueError("every module of the pathway is frozen: nothing would learn the task")
    set_pathway(model, genotype)
    return params


@torch.no_grad()
def from_dense(model: GatoModel, modules: int | None = None) -> GatoModel:
    """A PathNet-FFN copy of a dense `GatoModel` computing the same function.

    The dense MLP's hidden units are split into N = pathnet_active groups; module k takes rows
    [k h, (k+1) h) of fc_in and the same columns of fc_out, since
    W_out gelu(W_in x) = sum_k W_out[:, k] gelu(W_in[k] x). The copy's pathway is modules
    0..N-1 of every block; the other M - N modules keep their fresh initialisation.

    Args:
        model: a `GatoModel` with `config.ffn == "dense"`.
        modules: M of the copy (default: the model config's `pathnet_modules`).
    """
    cfg = model.config
    if cfg.ffn != "dense":
        raise ValueError(f"from_dense needs a dense model, got ffn={cfg.ffn!r}")
    overrides = {"ffn": "pathnet", "pathnet_module_size": None}
    if modules is not None:
        overrides["pathnet_modules"] = modules
    new_cfg = GatoConfig.from_dict({**cfg.to_dict(), **overrides})
    if new_cfg.intermediate_size % new_cfg.pathnet_active:
        raise ValueError(
            f"intermediate_size={new_cfg.intermediate_size} does not split into "
            f"pathnet_active={new_cfg.pathnet_active} equal modules"
        )
    out = GatoModel(new_cfg).to(model.device, model.dtype)
    missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
    expected_missing = {k for k in out.state_dict() if ".mlp." in k}
    if set(unexpected) - {k for k in model.state_dict() if ".mlp." in k} or (
        set(missing) - expected_missing
    ):
        raise ValueError(f"state dicts do not line up: missing {missing}, unexpected {unexpected}")
    size = module_size(new_cfg)
    for dense_block, block in zip(model.layers, out.layers, strict=True):
        for k in range(new_cfg.pathnet_active):
            units = slice(k * size, (k + 1) * size)
            block.mlp.experts[k].fc_in.weight.copy_(dense_block.mlp.fc_in.weight[units])
            block.mlp.experts[k].fc_out.weight.copy_(dense_block.mlp.fc_out.weight[:, units])
        block.mlp.set_active(list(range(new_cfg.pathnet_active)))
    return out
