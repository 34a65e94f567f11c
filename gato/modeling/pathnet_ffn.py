"""PathNet modules as the feed-forward blocks of `GatoModel` (`GatoConfig(ffn="pathnet")`).

Every decoder block's MLP becomes one PathNet layer: M small two-matrix GELU MLPs (the modules),
of which the active pathway sums N. The model's pathway is an (L, N) genotype over its L blocks,
as in `gato.experiments.pathnet.evolution`.
With module size = intermediate_size / N (the default), one
pathway has exactly the dense MLP's shape; indeed a dense MLP *is* N modules summed (its hidden
units split into N groups), so `from_dense` turns a trained dense generalist into a PathNet one
computing the same function (up to float summation order).

Continual learning without forgetting (what the paper does for task B):
1. train the generalist on its tasks with a pathway P0 (`set_pathway`);
2. `freeze_pathway(model, P0)`: P0's modules are marked frozen (a saved buffer);
3. `new_task_parameters(model, P1)` for a pathway P1 with fresh modules: every shared weight
   (embeddings, attention, norms, head) and every frozen module stops training; only P1's
   unfrozen modules train on the new task.
The old tasks run P0 as before: none of the weights they read has changed, so their outputs,
losses and scores are bit-identical (tests/test_pathnet_gato.py; `python -m
gato.experiments.pathnet gato`).

The active pathway lives in a saved buffer of each block; the forward pass keeps a Python copy
and reads the buffer back only after it changed (`set_pathway`, loading, `.to()`), so steady-state
decoding never syncs with the device for it; a captured CUDA graph keeps the pathway it was
captured with. One pathway per forward call: rows of one batch share it (batch per task).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gato.experiments.pathnet.evolution import active_modules, validate_genotype
from gato.modeling.config import GatoConfig

__all__ = [
    "PathNetFFN",
    "fresh_pathway",
    "freeze_pathway",
    "from_dense",
    "get_pathway",
    "module_size",
    "new_task_parameters",
    "pathnet_blocks",
    "set_pathway",
]


def module_size(config: GatoConfig) -> int:
    """Hidden units of one FFN module: `pathnet_module_size`, or intermediate_size / N."""
    if config.pathnet_module_size is not None:
        return config.pathnet_module_size
    return config.intermediate_size // config.pathnet_active


class FFNModule(nn.Module):
    """One module: (…, D) -> (…, D), fc_out(gelu(fc_in(x))), no biases (as `GatoMLP`)."""

    def __init__(self, hidden_size: int, size: int) -> None:
        super().__init__()
        self.fc_in = nn.Linear(hidden_size, size, bias=False)
        self.fc_out = nn.Linear(size, hidden_size, bias=False)
        # GatoModel._init_weights scales residual branches by depth: same init as the dense MLP.
        self.fc_out.residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x)))


class PathNetFFN(nn.Module):
    """M FFN modules; forward sums the active pathway's modules. x (B, L, D) -> (B, L, D).

    Buffers (saved with the model): `pathway` (N,) int64, this block's row of the genotype;
    `frozen` (M,) bool, modules fixed by an earlier task.
    """

    def __init__(self, config: GatoConfig) -> None:
        super().__init__()
        self.num_modules = config.pathnet_modules
        self.num_active = config.pathnet_active
        size = module_size(config)
        self.experts = nn.ModuleList(
            FFNModule(config.hidden_size, size) for _ in range(self.num_modules)
        )
        self.register_buffer("pathway", torch.arange(self.num_active, dtype=torch.long))
        self.register_buffer("frozen", torch.zeros(self.num_modules, dtype=torch.bool))
        # Built on the meta device when loading: the Python copy is read on first use.
        self._active: tuple[int, ...] = tuple(range(self.num_active))
        self._key: tuple[int, int] = (-1, -1)

    @property
    def active(self) -> tuple[int, ...]:
        """The distinct module indices the current pathway uses, sorted."""
        self._refresh()
        return self._active

    def set_active(self, indices: Any) -> None:
        """Use modules `indices` ((N,) ints in [0, M); repeats count once)."""
        row = validate_genotype(np.asarray(indices)[None], 1, self.num_active, self.num_modules)
        self.pathway.copy_(torch.from_numpy(row[0]))
        self._refresh()

    def _refresh(self) -> None:
        # The Python copy of the pathway follows the buffer: loading a checkpoint replaces the
        # buffer (or copies into it, which bumps its version), `.to()` replaces it. Reading it
        # back costs a device sync, so it is done only when the buffer has changed.
        key = (self.pathway._version, self.pathway.data_ptr())
        if self.__dict__.get("_seen") is not self.pathway or self._key != key:
            self._active = tuple(sorted({int(i) for i in self.pathway.tolist()}))
            self.__dict__["_seen"] = self.pathway
            self._key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._refresh()
        out = self.experts[self._active[0]](x)
        for m in self._active[1:]:
            out = out + self.experts[m](x)
        return out


# ---------------------------------------------------------------------------------------------
# Model-level helpers
# ---------------------------------------------------------------------------------------------


def pathnet_blocks(model: nn.Module) -> list[PathNetFFN]:
    """The PathNet FFN of every block of a `GatoModel` built with `ffn="pathnet"`."""
    config = getattr(model, "config", None)
    if getattr(config, "ffn", "dense") != "pathnet":
        raise ValueError(
            "the model's feed-forward blocks are not PathNet modules: build it with "
            "GatoConfig(ffn='pathnet') or convert a dense one with from_dense(model)"
        )
    return [layer.mlp for layer in model.layers]


def _check(model: nn.Module, genotype: Any) -> np.ndarray:
    cfg = model.config
    return validate_genotype(
        genotype, cfg.num_hidden_layers, cfg.pathnet_active, cfg.pathnet_modules
    )


def get_pathway(model: nn.Module) -> np.ndarray:
    """The model's current (L, N) genotype."""
    return np.stack([block.pathway.cpu().numpy() for block in pathnet_blocks(model)])


def set_pathway(model: nn.Module, genotype: Any) -> None:
    """Route every later forward pass through `genotype` ((L, N) module indices)."""
    genotype = _check(model, genotype)
    for block, row in zip(pathnet_blocks(model), genotype, strict=True):
        block.set_active(row)


def freeze_pathway(model: nn.Module, genotype: Any) -> None:
    """Mark the pathway's modules frozen (saved with the model) and stop their gradients."""
    genotype = _check(model, genotype)
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
    genotype = _check(model, genotype)
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
def from_dense(model: nn.Module, modules: int | None = None) -> nn.Module:
    """A PathNet-FFN copy of a dense `GatoModel` computing the same function.

    The dense MLP's hidden units are split into N = pathnet_active groups; module k takes rows
    [k h, (k+1) h) of fc_in and the same columns of fc_out, since
    W_out gelu(W_in x) = sum_k W_out[:, k] gelu(W_in[k] x). The copy's pathway is modules
    0..N-1 of every block; the other M - N modules keep their fresh initialisation.

    Args:
        model: a `GatoModel` with `config.ffn == "dense"`.
        modules: M of the copy (default: the model config's `pathnet_modules`).
    """
    from gato.modeling.model import GatoModel

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
