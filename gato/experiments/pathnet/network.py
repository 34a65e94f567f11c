"""The PathNet network: L layers of M modules, task heads, frozen modules.

A pathway (see `gato.experiments.pathnet.evolution`) picks at most N modules in every layer; the
outputs of a
layer's active modules are summed and the sum feeds every module of the next layer. Each task has
its own output layer (head) on top of the last layer's sum.

Modules are linear (`Linear` + ReLU on a flat input) or convolutional (`Conv2d` + ReLU, "same"
padding so every layer keeps the input's height and width, flattened before the head). Every
module owns its parameters, so freezing a module is `requires_grad = False` on its tensors: a
frozen module can still be read by the pathways of later tasks (that is how PathNet transfers),
and no gradient or optimizer ever reaches it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gato.experiments.pathnet.evolution import active_modules, validate_genotype

__all__ = ["PathNet", "PathNetConfig", "init_module_"]

MODULE_KINDS = ("linear", "conv")


@dataclass
class PathNetConfig:
    """Shape of a `PathNet` (defaults: the paper's binary MNIST network)."""

    layers: int = 3
    """L: layers of modules."""
    modules: int = 10
    """M: modules per layer."""
    active: int = 3
    """N: the most modules a pathway uses in one layer (at most M)."""
    width: int = 20
    """Units of a linear module, or output channels of a convolutional one."""
    kind: str = "linear"
    """Module type: "linear" (flat input) or "conv" (input (C, H, W))."""
    input_shape: tuple[int, ...] = (64,)
    """Shape of one input: (features,) for linear modules, (C, H, W) for convolutional ones."""
    kernel_size: int = 3
    """Kernel side of convolutional modules (odd: "same" padding keeps H and W)."""

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        for name in ("layers", "modules", "active", "width", "kernel_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PathNetConfig.{name} must be a positive integer, got {value!r}")
        if self.active > self.modules:
            raise ValueError(
                f"PathNetConfig.active (N={self.active}) cannot exceed modules (M={self.modules}): "
                "a pathway picks at most N of the M modules of a layer"
            )
        if self.kind not in MODULE_KINDS:
            raise ValueError(f"PathNetConfig.kind must be one of {MODULE_KINDS}, got {self.kind!r}")
        expected = 1 if self.kind == "linear" else 3
        if len(self.input_shape) != expected or min(self.input_shape) < 1:
            raise ValueError(
                f"PathNetConfig.input_shape must be {expected}-dimensional and positive for "
                f"{self.kind} modules, got {self.input_shape}"
            )
        if self.kind == "conv" and self.kernel_size % 2 == 0:
            raise ValueError(
                f"PathNetConfig.kernel_size={self.kernel_size} must be odd for 'same' padding"
            )

    @property
    def feature_size(self) -> int:
        """Size of the flattened last-layer sum that task heads read."""
        if self.kind == "linear":
            return self.width
        return self.width * self.input_shape[1] * self.input_shape[2]


def init_module_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Re-draw a Linear / Conv2d's parameters (PyTorch's default init) from `generator`.

    `reset_parameters()` would draw from the global RNG; a generator keeps re-initialisation
    reproducible whatever else the process has drawn.
    """
    weight = module.weight
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if module.bias is not None:
        fan_in = weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(module.bias, -bound, bound, generator=generator)


class PathNet(nn.Module):
    """L x M modules and one output layer per task.

    `forward(x, genotype, task)`: x (B, *input_shape) -> logits (B, outputs of the task's head).
    The genotype is an (L, N) integer array (row l: the module indices of layer l; repeated
    indices count once).
    """

    def __init__(self, config: PathNetConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        layers = []
        for layer in range(config.layers):
            layers.append(nn.ModuleList(self._make_module(layer) for _ in range(config.modules)))
        self.layers = nn.ModuleList(layers)
        self.heads = nn.ModuleDict()
        self.frozen: set[tuple[int, int]] = set()
        """(layer, module) pairs that no longer train."""
        self.frozen_heads: set[str] = set()
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                init_module_(module, generator)

    def _make_module(self, layer: int) -> nn.Module:
        cfg = self.config
        if cfg.kind == "linear":
            in_size = cfg.input_shape[0] if layer == 0 else cfg.width
            return nn.Linear(in_size, cfg.width)
        in_channels = cfg.input_shape[0] if layer == 0 else cfg.width
        return nn.Conv2d(in_channels, cfg.width, cfg.kernel_size, padding=cfg.kernel_size // 2)

    # -- tasks ----------------------------------------------------------------------------------

    def add_head(
        self, task: str, outputs: int, generator: torch.Generator | None = None
    ) -> nn.Linear:
        """A new output layer for `task` (a task's head is its own: never shared)."""
        if task in self.heads:
            raise ValueError(f"task {task!r} already has a head")
        if outputs < 1:
            raise ValueError(f"a head needs at least one output, got {outputs}")
        head = nn.Linear(self.config.feature_size, outputs)
        init_module_(head, generator)
        self.heads[task] = head
        return head

    def _head(self, task: str) -> nn.Linear:
        if task not in self.heads:
            raise ValueError(f"unknown task {task!r}; tasks with a head: {sorted(self.heads)}")
        return self.heads[task]

    # -- forward --------------------------------------------------------------------------------

    def check_genotype(self, genotype: np.ndarray) -> np.ndarray:
        """The genotype as an int64 (L, N) array; `ValueError` if it does not fit this network."""
        cfg = self.config
        return validate_genotype(genotype, cfg.layers, cfg.active, cfg.modules)

    def features(self, x: torch.Tensor, genotype: np.ndarray) -> torch.Tensor:
        """x (B, *input_shape) -> (B, feature_size): the last layer's summed module outputs."""
        genotype = self.check_genotype(genotype)
        if tuple(x.shape[1:]) != self.config.input_shape:
            raise ValueError(
                f"input must be (B, {', '.join(map(str, self.config.input_shape))}), "
                f"got {tuple(x.shape)}"
            )
        for layer, indices in zip(self.layers, active_modules(genotype), strict=True):
            x = sum(torch.relu(layer[m](x)) for m in indices)  # (B, width[, H, W])
        return x.flatten(1)

    def forward(self, x: torch.Tensor, genotype: np.ndarray, task: str) -> torch.Tensor:
        """x (B, *input_shape) -> (B, outputs) logits of `task`'s head through the pathway."""
        head = self._head(task)
        return head(self.features(x, genotype))

    # -- what trains ----------------------------------------------------------------------------

    def pathway_parameters(self, genotype: np.ndarray, task: str) -> list[nn.Parameter]:
        """The parameters a pathway trains: its modules and `task`'s head, frozen ones left out."""
        genotype = self.check_genotype(genotype)
        params: list[nn.Parameter] = []
        for layer, indices in enumerate(active_modules(genotype)):
            for m in indices:
                if (layer, m) not in self.frozen:
                    params.extend(self.layers[layer][m].parameters())
        if task not in self.frozen_heads:
            params.extend(self._head(task).parameters())
        return params

    def freeze(self, genotype: np.ndarray, task: str | None = None) -> None:
        """Fix the pathway's modules (and `task`'s head) for good: they stop training."""
        genotype = self.check_genotype(genotype)
        for layer, indices in enumerate(active_modules(genotype)):
            for m in indices:
                self.frozen.add((layer, m))
                self.layers[layer][m].requires_grad_(False)
        if task is not None:
            self._head(task).requires_grad_(False)
            self.frozen_heads.add(task)

    def reinitialise_unfrozen(self, generator: torch.Generator | None = None) -> int:
        """Re-draw every module that is not frozen (PathNet after a task); returns their count.

        Heads are left alone: each task has its own, and a new task gets a new one.
        """
        count = 0
        for layer, modules in enumerate(self.layers):
            for m, module in enumerate(modules):
                if (layer, m) not in self.frozen:
                    with torch.no_grad():
                        init_module_(module, generator)
                    count += 1
        return count

    def frozen_state(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, tensor) of every frozen parameter (for bit-identity checks)."""
        for layer, m in sorted(self.frozen):
            for name, p in self.layers[layer][m].named_parameters():
                yield f"layers.{layer}.{m}.{name}", p
        for task in sorted(self.frozen_heads):
            for name, p in self.heads[task].named_parameters():
                yield f"heads.{task}.{name}", p
