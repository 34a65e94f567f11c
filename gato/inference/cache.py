"""The policy's KV cache: ragged rows in preallocated buffers.

`KVCache` holds B rows of keys and values in (B, H, capacity, d) buffers per layer; a (B, capacity)
mask marks each row's real tokens, so rows can be rebuilt, slid and retired independently while
all of them decode in one batch. `GatoModel` uses it through the two methods it calls on any
cache (`get_seq_length`, `update`).

The decoding steps over it: `gato.inference.eager` (growing, Python-sized columns) and
`gato.inference.static` (fixed capacity, tensor-valued columns: the CUDA graph path).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from gato.modeling.model import GatoModel
from gato.modeling.rotary import apply_rotary, rotary_cos_sin

__all__ = ["KVCache"]


# ---------------------------------------------------------------------------------------------
# The KV cache
# ---------------------------------------------------------------------------------------------


class KVCache:
    """Keys and values of B ragged rows in preallocated (B, H, capacity, d) buffers per layer.

    Columns [0, length) are in use; `mask` (B, capacity) bool marks each row's real tokens (rows
    are left-padded and may hold masked holes). Implements the two methods `GatoModel` calls on a
    cache, `get_seq_length` and `update`: `update` writes the new keys at [length, length + L)
    and returns the used columns. The caller moves `length` on (`advance`) after the forward.
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
                k[row, :, later] = apply_rotary(part, cos, sin).to(k.dtype)


@functools.lru_cache(maxsize=64)
def _rotation(
    delta: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (d,) of a RoPE rotation by `delta` positions (a slide drops the same number of
    tokens again and again: computed once)."""
    cos, sin = rotary_cos_sin(torch.full((1, 1), float(delta), device=device), head_dim, theta)
    return cos.reshape(head_dim), sin.reshape(head_dim)
