"""The policy's KV cache: ragged rows in preallocated buffers, and the fixed-shape decoding step.

`KVCache` holds B rows of keys and values in (B, H, capacity, d) buffers per layer; a (B, capacity)
mask marks each row's real tokens, so rows can be rebuilt, slid and retired independently while
all of them decode in one batch. `GatoModel` uses it through the two methods it calls on any
cache (`get_seq_length`, `update`).

`StaticDecoder` runs one step with every shape fixed (the CUDA graph path).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from gato.modeling.model import GatoModel, apply_rotary, rotary_cos_sin
from gato.vocab import NO_LOCAL_POSITION, PATCH_ID

__all__ = ["KVCache", "StaticDecoder"]


# ---------------------------------------------------------------------------------------------
# The KV cache
# ---------------------------------------------------------------------------------------------


class KVCache:
    """Keys and values of B ragged rows in preallocated (B, H, capacity, d) buffers per layer.

    Columns [0, length) are in use; `mask` (B, capacity) bool marks each row's real tokens (rows
    are left-padded and may hold masked holes). Implements the two methods `GatoModel` calls on a
    cache, `get_seq_length` and `update`: `update` writes the new keys at [length, length + L)
    and returns the used columns (dynamic mode) or, when `write_index` is set, writes at those
    columns and returns the whole buffers (static mode, fixed shapes). The caller moves `length`
    on (`advance`) after the forward.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        capacity: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        shape = (batch_size, num_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.mask = torch.zeros(batch_size, capacity, dtype=torch.bool, device=device)
        self.length = 0
        self.dense = True
        """No masked column in [0, length): attention needs no mask, positions are arange."""
        self.write_index: torch.Tensor | None = None

    @classmethod
    def for_model(
        cls, model: GatoModel, batch_size: int, capacity: int, device: Any = None
    ) -> KVCache:
        cfg = model.config
        weight = model.lm_head.weight
        return cls(
            cfg.num_hidden_layers,
            batch_size,
            cfg.num_attention_heads,
            cfg.head_dim,
            capacity,
            weight.dtype,
            device or weight.device,
        )

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    # -- the interface GatoModel uses ------------------------------------------------------------

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """key, value: (B, H, L, d) of the new tokens -> the keys and values to attend over."""
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if self.write_index is not None:
            keys.index_copy_(2, self.write_index, key)
            values.index_copy_(2, self.write_index, value)
            return keys, values
        stop = self.length + key.shape[2]
        keys[:, :, self.length : stop] = key
        values[:, :, self.length : stop] = value
        return keys[:, :, :stop], values[:, :, :stop]

    # -- bookkeeping -----------------------------------------------------------------------------

    def reserve(self, extra: int, grow: bool = True) -> None:
        """Make room for `extra` more columns: compact first, then grow (dynamic mode)."""
        if self.length + extra <= self.capacity:
            return
        self.compact()
        if self.length + extra <= self.capacity:
            return
        if not grow:
            raise RuntimeError(
                f"static KV cache of {self.capacity} columns cannot hold {self.length} + {extra}"
            )
        self._reallocate(max(self.length + extra, 2 * self.capacity))

    def _reallocate(self, capacity: int) -> None:
        def grown(t: torch.Tensor) -> torch.Tensor:
            shape = (*t.shape[:2], capacity, t.shape[3])
            out = t.new_zeros(shape)
            out[:, :, : self.length] = t[:, :, : self.length]
            return out

        self.keys = [grown(k) for k in self.keys]
        self.values = [grown(v) for v in self.values]
        mask = self.mask.new_zeros(self.batch_size, capacity)
        mask[:, : self.length] = self.mask[:, : self.length]
        self.mask = mask

    def open_columns(self, new_mask: torch.Tensor) -> None:
        """Mark the next L columns: new_mask (B, L) bool on the CPU, False where a row has a
        hole (checked on the host, so that no device synchronisation is needed)."""
        length = new_mask.shape[1]
        if self.dense and not bool(new_mask.all()):
            self.dense = False
        self.mask[:, self.length : self.length + length] = new_mask.to(self.mask.device)

    def advance(self, length: int) -> None:
        self.length += length

    def real_counts(self) -> torch.Tensor:
        """(B,) int64 real tokens of each row."""
        return self.mask[:, : self.length].sum(dim=1)

    def compact(self) -> None:
        """Squeeze out masked columns: each row's real tokens right-aligned, length = the most."""
        if self.dense:
            return
        counts = self.real_counts()  # (B,)
        width = int(counts.max()) if self.batch_size else 0
        used = self.mask[:, : self.length]
        # Source column of each destination column: the row's real columns, right-aligned.
        order = torch.argsort((~used).to(torch.int8), dim=1, stable=True)  # real columns first
        dest = torch.arange(width, device=used.device)[None, :]  # (1, W)
        shift = (width - counts)[:, None]  # (B, 1) padding before each row's tokens
        src_rank = (dest - shift).clamp(min=0)  # (B, W)
        src = order.gather(1, src_rank)
        new_mask = dest >= shift  # (B, W)
        index = src[:, None, :, None]
        for i in range(len(self.keys)):
            k, v = self.keys[i], self.values[i]
            idx = index.expand(-1, k.shape[1], -1, k.shape[3])
            k_new, v_new = (
                k[:, :, : self.length].gather(2, idx),
                v[:, :, : self.length].gather(2, idx),
            )
            k[:, :, :width], v[:, :, :width] = k_new, v_new
        self.mask[:, : self.length] = False
        self.mask[:, :width] = new_mask
        self.length = width
        self.dense = bool(new_mask.all())

    def select_rows(self, rows: Sequence[int]) -> None:
        """Keep only these rows (environments that still run), in this order."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.mask.device)
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.mask = self.mask.index_select(0, index)
        self.dense = False
        self.compact()

    def install_row(self, row: int, source: KVCache) -> None:
        """Replace row `row` with the one-row dense cache `source`, right-aligned: its tokens end
        at the last used column and the columns before them are masked out for this row."""
        n = source.length
        if n > self.length:
            self._grow_left(n - self.length)
        start = self.length - n
        for i in range(len(self.keys)):
            self.keys[i][row, :, start : self.length] = source.keys[i][0, :, :n]
            self.values[i][row, :, start : self.length] = source.values[i][0, :, :n]
        self.mask[row, : self.length] = False
        self.mask[row, start : self.length] = True
        self.dense = bool(self.mask[:, : self.length].all())

    def _grow_left(self, extra: int) -> None:
        """Insert `extra` masked columns before column 0 of every row."""
        if self.length + extra > self.capacity:
            self._reallocate(self.length + extra)
        stop = self.length
        if stop:
            for tensors in (self.keys, self.values):
                for t in tensors:
                    t[:, :, extra : stop + extra] = t[:, :, :stop].clone()
            self.mask[:, extra : stop + extra] = self.mask[:, :stop].clone()
        self.mask[:, :extra] = False
        self.length += extra
        self.dense = False

    def clear(self) -> None:
        """Forget every row's tokens (the buffers stay allocated)."""
        self.mask.zero_()
        self.length = 0
        self.dense = True

    def remove_columns(self, first: int, count: int, rope_theta: float) -> None:
        """Dense cache: delete columns [first, first + count) of every row, moving the later
        columns left and rotating their keys by -count positions (see `drop_tokens`)."""
        if not self.dense:
            raise RuntimeError("remove_columns needs a dense cache; use drop_tokens")
        stop = self.length
        if count <= 0:
            return
        cos, sin = _rotation(-count, self.keys[0].shape[-1], rope_theta, self.mask.device)
        # Layer by layer: each layer's buffer is its own tensor, so that a compiled static step
        # writing one layer's columns does not functionalise a copy of every layer's.
        for k, v in zip(self.keys, self.values, strict=True):
            tail = k[:, :, first + count : stop].float()
            k[:, :, first : stop - count] = apply_rotary(tail, cos, sin).to(k.dtype)
            v[:, :, first : stop - count] = v[:, :, first + count : stop].clone()
        self.mask[:, stop - count : stop] = False
        self.length = stop - count

    def drop_tokens(self, row: int, first: int, count: int, rope_theta: float) -> None:
        """Remove real tokens of rank [first, first + count) from a row, RoPE-shifting the rest.

        The dropped columns are masked out; every later key of the row is rotated by -count
        positions, so positions stay contiguous (a rotation by p then by -d is one by p - d).
        """
        if count <= 0:
            return
        used = self.mask[row, : self.length]
        rank = used.long().cumsum(0) - 1  # (C,)
        dropped = used & (rank >= first) & (rank < first + count)
        later = torch.nonzero(used & (rank >= first + count)).squeeze(1)
        self.mask[row, : self.length] = used & ~dropped
        self.dense = False
        if later.numel():
            cos, sin = _rotation(-count, self.keys[0].shape[-1], rope_theta, self.mask.device)
            for k in self.keys:
                part = k[row, :, later].float()  # (H, n, d)
                k[row, :, later] = apply_rotary(part, cos[0], sin[0]).to(k.dtype)


@functools.lru_cache(maxsize=64)
def _rotation(
    delta: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (1, 1, 1, d) of a RoPE rotation by `delta` positions (a slide drops the same
    number of tokens again and again: computed once)."""
    return rotary_cos_sin(torch.full((1, 1), float(delta), device=device), head_dim, theta)


# ---------------------------------------------------------------------------------------------
# The fixed-shape step (static cache, CUDA graphs)
# ---------------------------------------------------------------------------------------------


class StaticDecoder:
    """One decoding step as a fixed-shape function over a `KVCache` of fixed capacity.

    The write columns, the attention mask (B, 1, L, capacity) and the positions are computed from
    tensors inside the step (the cache's mask and a 0-d start column), so the step can be
    captured as a CUDA graph once per (L, number of patches) and replayed: the inputs are copied
    into the graph's buffers, nothing else changes. It calls the model's own blocks, embedding
    tables and final norm; patches go in with `index_copy_` at precomputed placeholder positions
    (no data-dependent shapes). Returns the final hidden state of each row's last position (B, D).
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
            torch.zeros(0, dtype=torch.long, device=device),
        )

    def _step(
        self,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor,
        patches: torch.Tensor,
        patch_positions: torch.Tensor,
        patch_index: torch.Tensor,
        start: torch.Tensor,
    ) -> torch.Tensor:
        model, cache = self.model, self.cache
        emb = model.embedding
        b, length = input_ids.shape
        x = emb.tokens(input_ids)  # (B, L, D)
        if patches.shape[0]:
            rows = (patch_positions[:, 0] + patch_positions[:, 1]) // 2
            cols = (patch_positions[:, 2] + patch_positions[:, 3]) // 2
            p = emb.patches(patches) + emb.patch_rows(rows) + emb.patch_cols(cols)  # (N, D)
            x = x.reshape(b * length, -1).index_copy(0, patch_index, p.to(x.dtype))
            x = x.view(b, length, -1)
        has_local = (local_positions >= 0).unsqueeze(-1).to(x.dtype)
        x = x + emb.local_positions(local_positions.clamp(min=0)) * has_local
        new_cols = start + self.columns[:length]  # (L,)
        mask = cache.mask  # (B, capacity), the new columns already opened
        positions = (mask.long().cumsum(-1) - 1).index_select(1, new_cols).clamp(min=0)  # (B, L)
        causal = self.columns[None, :] <= new_cols[:, None]  # (L, capacity)
        own = self.columns[None, :] == new_cols[:, None]
        attend = (mask[:, None, :] & causal[None]) | own[None]  # (B, L, capacity)
        cos, sin = rotary_cos_sin(positions, model.config.head_dim, model.config.rope_theta)
        cache.write_index = new_cols
        try:
            for block in model.layers:
                x = block(x, cos, sin, attention_mask=attend[:, None], past_key_values=cache)
        finally:
            cache.write_index = None
        return model.norm(x[:, -1])  # (B, D)

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
            patches, patch_positions, patch_index = self._no_patches
        else:  # a prefill: its ids come from the host, so finding the placeholders is free
            patch_index = torch.nonzero(input_ids.cpu().reshape(-1) == PATCH_ID).squeeze(1)
        self.start.fill_(self.cache.length)
        inputs = {
            "input_ids": input_ids.to(device),
            "local_positions": local_positions.to(device),
            "patches": patches.to(device),
            "patch_positions": patch_positions.to(device),
            "patch_index": patch_index.to(device),
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
