"""`StaticDecoder`: one decoding step with every shape fixed (the CUDA graph path).

The write columns, the attention mask (B, 1, L, capacity) and the positions are computed from
tensors inside the step (the cache's mask and a 0-d start column, by `gato.modeling.masks`), so
the step can be captured as a CUDA graph once per (L, number of patches) and replayed: the inputs
are copied into the graph's buffers, nothing else changes. It arranges the model's own pieces: the
embedding module, each block's projection, attention and rest (`GatoBlock.bind`), the final norm;
its only work of its own is writing the new keys and values at the tensor-valued columns.
"""

from __future__ import annotations

from typing import Any

import torch

from gato.inference.cache import KVCache
from gato.modeling.layers import bind_blocks, bind_layer_norm
from gato.modeling.masks import causal_padding_mask_at, position_ids_at
from gato.modeling.model import GatoModel
from gato.modeling.rotary import rotary_cos_sin
from gato.vocab import NO_LOCAL_POSITION

__all__ = ["StaticDecoder"]


class StaticDecoder:
    """One decoding step as a fixed-shape function over a `KVCache` of fixed capacity.

    Patches go through the model's embedding as in its forward (their placeholders found in the
    ids on the device, no data-dependent shape). Returns the final hidden state of each row's last
    position (B, D). The blocks' tensors are read at construction (in-place weight updates are
    seen, replaced parameters are not).
    """

    def __init__(
        self,
        model: GatoModel,
        cache: KVCache,
        cuda_graphs: bool = False,
        compile: bool = False,
    ) -> None:
        self.model = model
        self.cache = cache
        self.layers = bind_blocks(model.layers, "StaticDecoder")
        self.norm = bind_layer_norm(model.norm)
        device = cache.mask.device
        self.cuda_graphs = cuda_graphs and torch.device(device).type == "cuda"
        self.step_fn = self._step
        if compile:
            # On the CPU inductor's C++ wrapper drops most of the per-kernel Python overhead
            # (a one-token step: 0.31 ms against 0.37 ms for the tiny model); on CUDA the
            # captured graph does that.
            options = {"cpp_wrapper": True} if torch.device(device).type == "cpu" else None
            self.step_fn = torch.compile(self._step, dynamic=False, options=options)
        self.columns = torch.arange(cache.capacity, device=device)
        self.start = torch.zeros((), dtype=torch.long, device=device)
        self._graphs: dict[tuple[int, int], tuple[Any, dict[str, torch.Tensor], torch.Tensor]] = {}
        cfg = model.config
        self._no_patches = (
            torch.zeros(
                0,
                cfg.image_channels,
                cfg.patch_size,
                cfg.patch_size,
                dtype=torch.uint8,
                device=device,
            ),
            torch.zeros(0, 4, dtype=torch.long, device=device),
        )

    def _step(
        self,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor,
        patches: torch.Tensor,
        patch_positions: torch.Tensor,
        start: torch.Tensor,
    ) -> torch.Tensor:
        cache, cfg = self.cache, self.model.config
        length = input_ids.shape[1]
        x = self.model.embedding(input_ids, local_positions, patches, patch_positions)  # (B, L, D)
        new_cols = start + self.columns[:length]  # (L,)
        used = cache.mask  # (B, capacity), the new columns already opened
        mask = causal_padding_mask_at(used, new_cols, self.columns)  # (B, 1, L, capacity)
        positions = position_ids_at(used, new_cols)  # (B, L)
        cos, sin = rotary_cos_sin(positions, cfg.head_dim, cfg.rope_theta)
        for layer in self.layers:
            q, k, v = layer.project(x, cos, sin)
            keys, values = cache.keys[layer.layer_idx], cache.values[layer.layer_idx]
            keys.index_copy_(2, new_cols, k)
            values.index_copy_(2, new_cols, v)
            x = layer.finish(x, layer.attend(q, keys, values, mask))
        return self.norm(x[:, -1])  # (B, D)

    def __call__(
        self,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor | None,
        patches: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
    ) -> torch.Tensor:
        """Run one step at the cache's current length (its new columns already opened)."""
        device = self.start.device
        b, length = input_ids.shape
        if local_positions is None:
            local_positions = torch.full_like(input_ids, NO_LOCAL_POSITION)
        if patches is None or patches.shape[0] == 0:
            patches, patch_positions = self._no_patches
        self.start.fill_(self.cache.length)
        inputs = {
            "input_ids": input_ids.to(device),
            "local_positions": local_positions.to(device),
            "patches": patches.to(device),
            "patch_positions": patch_positions.to(device),
        }
        if not self.cuda_graphs:
            return self.step_fn(**inputs, start=self.start)
        key = (length, int(patches.shape[0]))
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs)
        graph, buffers, output = self._graphs[key]
        for name, value in inputs.items():
            buffers[name].copy_(value)
        graph.replay()
        return output

    def reset_graphs(self) -> None:
        """Forget captured graphs (the cache's buffers were replaced)."""
        self._graphs.clear()

    def _capture(self, inputs: dict[str, torch.Tensor]) -> tuple[Any, dict, torch.Tensor]:
        """Warm up on a side stream, then capture. The warm-up writes the same cache columns the
        replay will (same inputs, same start), so it leaves no trace."""
        buffers = {name: value.clone() for name, value in inputs.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.step_fn(**buffers, start=self.start)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.step_fn(**buffers, start=self.start)
        return graph, buffers, output
