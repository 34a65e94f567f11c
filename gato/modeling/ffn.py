"""The decoder block's feed-forward variants: the dense GELU MLP and PathNet's modules.

Dense (`GatoConfig(ffn="dense")`): two matrices and a GELU, no biases, as the paper's FF sizes
assume.

PathNet (`GatoConfig(ffn="pathnet")`): every block's MLP becomes one PathNet layer, M small
two-matrix GELU MLPs (the modules) of which the active pathway sums N. The model's pathway is an
(L, N) genotype over its L blocks (`validate_genotype`, `active_modules`: pure functions over
numpy arrays, which the PathNet experiments import from here). With module size =
intermediate_size / N (the default), one pathway has exactly the dense MLP's shape; indeed a
dense MLP *is* N modules summed (its hidden units split into N groups). Freezing pathways and
training new ones, and converting a dense model, are the experiment's
(`gato.experiments.pathnet.transfer`); routing a model's forward through a pathway is here
(`set_pathway`).

The active pathway lives in a saved buffer of each block; the forward pass keeps a Python copy
and reads the buffer back only after it changed (`set_pathway`, loading, `.to()`), so steady-state
decoding never syncs with the device for it; a captured CUDA graph keeps the pathway it was
captured with. One pathway per forward call: rows of one batch share it (batch per task).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gato.modeling.config import GatoConfig

__all__ = [
    "GatoMLP",
    "PathNetFFN",
    "active_modules",
    "check_genotype",
    "feed_forward",
    "gelu_mlp",
    "get_pathway",
    "module_size",
    "pathnet_blocks",
    "set_pathway",
    "validate_genotype",
]


def gelu_mlp(x: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
    """(..., D) -> (..., D): w_out gelu(w_in x); w_in (F, D), w_out (D, F)."""
    return F.linear(F.gelu(F.linear(x, w_in)), w_out)


class GatoMLP(nn.Module):
    """Two-matrix GELU MLP, as the paper's FF sizes assume. (B, L, D) -> (B, L, D)."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.fc_in = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.fc_out = nn.Linear(intermediate_size, hidden_size, bias=False)
        # GatoModel._init_weights scales residual branches by depth.
        self.fc_out.residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_mlp(x, self.fc_in.weight, self.fc_out.weight)

    def bind(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The forward with the weights read once (the tensors, not copies)."""
        return functools.partial(gelu_mlp, w_in=self.fc_in.weight, w_out=self.fc_out.weight)


# ---------------------------------------------------------------------------------------------
# PathNet
# ---------------------------------------------------------------------------------------------


def validate_genotype(genotype: np.ndarray, layers: int, active: int, modules: int) -> np.ndarray:
    """Return `genotype` as an int64 (L, N) array, or raise `ValueError` naming what is wrong.

    Args:
        genotype: (L, N) integer module indices (any array-like).
        layers: L. active: N (at most M). modules: M.
    """
    if active > modules:
        raise ValueError(f"N={active} active modules per layer exceeds the M={modules} modules")
    array = np.asarray(genotype)
    if array.shape != (layers, active):
        raise ValueError(
            f"genotype must have shape (L={layers}, N={active}), got {tuple(array.shape)}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"genotype must hold integer module indices, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= modules):
        raise ValueError(
            f"genotype indices must lie in [0, M={modules}), found [{array.min()}, {array.max()}]"
        )
    return array.astype(np.int64, copy=False)


def active_modules(genotype: np.ndarray) -> list[list[int]]:
    """(L, N) genotype -> for each layer, the sorted distinct module indices it uses."""
    return [sorted({int(m) for m in row}) for row in np.asarray(genotype)]


def module_size(config: GatoConfig) -> int:
    """Hidden units of one FFN module: `pathnet_module_size`, or intermediate_size / N."""
    if config.pathnet_module_size is not None:
        return config.pathnet_module_size
    return config.intermediate_size // config.pathnet_active


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
            GatoMLP(config.hidden_size, size) for _ in range(self.num_modules)
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

    def bind(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The module itself: its pathway is read at every call."""
        return self


def feed_forward(config: GatoConfig) -> nn.Module:
    """The feed-forward part of a block for `config.ffn`."""
    if config.ffn == "pathnet":
        return PathNetFFN(config)
    return GatoMLP(config.hidden_size, config.intermediate_size)


# ---------------------------------------------------------------------------------------------
# A model's pathway
# ---------------------------------------------------------------------------------------------


def pathnet_blocks(model: nn.Module) -> list[PathNetFFN]:
    """The PathNet FFN of every block of a `GatoModel` built with `ffn="pathnet"`."""
    config = getattr(model, "config", None)
    if getattr(config, "ffn", "dense") != "pathnet":
        raise ValueError(
            "the model's feed-forward blocks are not PathNet modules: build it with "
            "GatoConfig(ffn='pathnet') or convert a dense one with "
            "gato.experiments.pathnet.transfer.from_dense(model)"
        )
    return [layer.mlp for layer in model.layers]


def check_genotype(model: nn.Module, genotype: Any) -> np.ndarray:
    """`validate_genotype` against a model's config: (L, N) int64."""
    cfg = model.config
    return validate_genotype(
        genotype, cfg.num_hidden_layers, cfg.pathnet_active, cfg.pathnet_modules
    )


def get_pathway(model: nn.Module) -> np.ndarray:
    """The model's current (L, N) genotype."""
    return np.stack([block.pathway.cpu().numpy() for block in pathnet_blocks(model)])


def set_pathway(model: nn.Module, genotype: Any) -> None:
    """Route every later forward pass through `genotype` ((L, N) module indices)."""
    genotype = check_genotype(model, genotype)
    for block, row in zip(pathnet_blocks(model), genotype, strict=True):
        block.set_active(row)
