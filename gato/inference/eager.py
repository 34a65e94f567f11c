"""`CachedForward`: GatoModel's forward over a `KVCache` as plain tensor functions.

A decoding step of a small model on a CPU is bound by per-operation overhead, not arithmetic: a
one-token forward of the tiny preset does ~4 MFLOP but spent ~0.5 ms in `nn.Module` calls, output
objects and input checks. This runs the same operations, in the same order, on the same weights,
with none of that: each block's pieces are bound once (`GatoBlock.bind`: its tensors read once,
no module calls), the rotary angles come from a table built once (`RotaryTable`: the same fp32
values `rotary_cos_sin` computes), and the one-token step of a dense cache needs no mask. This
module only arranges the pieces (which layer, which columns of the cache, which angles); their
math is `gato.modeling`'s. In a prefill the last layer computes the
last position only (the only output anyone reads; its keys and values are written first).
Outputs equal the model's forward to float rounding (tested against it, ragged rows and patches
included).

`greedy_tokens` decodes a whole greedy action (the observation, then every action token fed back)
in one call. Compiled (`compile=True`), that call is one graph with symbolic sizes, so one
compilation serves every cache length. The graph does not write the cache: a write into a slice
of a graph input is functionalised into a pass over the whole buffer (for the tiny model that
made a compiled step slower than the eager one), so the compiled function reads the cached
columns as they are, attends over them and over the step's own new keys in one softmax, and
returns the new keys and values for the caller to write.

Used by `GatoPolicy` on its eager path. A feed-forward part other than the dense MLP (PathNet's,
say) is called as its module.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from gato.modeling.layers import attend_split, bind_blocks, bind_layer_norm
from gato.modeling.masks import causal_padding_mask, position_ids
from gato.modeling.model import GatoModel
from gato.modeling.rotary import RotaryTable

__all__ = ["CachedForward"]


class CachedForward:
    """`forward(input_ids, ...)` on top of a `KVCache` -> (B, D) final hidden state of the last
    position of each row, as `GatoModel.forward(..., past_key_values=cache).last_hidden_state[:,
    -1]` would give it. Built from the model's parameters at construction (the tensors, not
    copies: in-place weight updates are seen, replaced parameters are not)."""

    def __init__(
        self, model: GatoModel, table_size: int | None = None, compile: bool = False
    ) -> None:
        cfg = model.config
        self.model = model
        self.layers = bind_blocks(model.layers, "CachedForward")
        self.norm = bind_layer_norm(model.norm)
        self.embedding = model.embedding
        # A fed-back action token has no local position and no patch. With the table alone its
        # embedding is its row, looked up directly: the module call inside the compiled greedy
        # loop cost ~5% of a dm-control-like step (benchmarks/policy_latency_compare.py).
        if model.embedding.values is None:
            self.embed_ids = functools.partial(F.embedding, weight=model.embedding.tokens.weight)
        else:
            self.embed_ids = model.embedding.embed_ids
        weight = model.embedding.tokens.weight
        self.rotary = RotaryTable(cfg.head_dim, cfg.rope_theta, weight.dtype, weight.device)
        self.rotary.grow(table_size or 2 * cfg.max_position_embeddings)
        self.compiled = None
        if compile:
            # Sizes symbolic (dynamic=True): the cache length changes every call and one graph
            # serves every length. On the CPU the C++ wrapper drops the per-kernel overhead.
            cpu = weight.device.type == "cpu"
            options = {"cpp_wrapper": True} if cpu else None
            self.compiled = torch.compile(self._greedy_split, dynamic=True, options=options)

    def __call__(
        self,
        cache: Any,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor | None = None,
        patches: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
        embedded: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Feed (B, L) new tokens at the cache's current length (its new columns already opened
        with `open_columns`; the caller advances it afterwards) -> (B, D). `embedded`: the
        (B, L', D) inputs already embedded (`GatoModel.embed` of grouped values); the ids are
        then not read."""
        past = cache.length
        if embedded is None:
            x = self.embedding(input_ids, local_positions, patches, patch_positions)  # (B, L, D)
        else:
            x = embedded
        b, length = x.shape[:2]
        self.rotary.grow(past + length)
        if cache.dense:
            mask = causal_padding_mask(None, length, past, x.device)  # None for one token
            # Every row sits at the same positions: one (L, 1, 1, d) slice of the table.
            cos, sin = self.rotary.span(past, length)
        else:
            used = cache.mask[:, : past + length]  # (B, C)
            mask = causal_padding_mask(used, length, past, x.device)
            cos, sin = self.rotary.at(position_ids(used, length))  # (B, L, 1, 1, d)
        if cache.keys[0].shape[2] < past + length:
            raise RuntimeError(f"KV cache of {cache.keys[0].shape[2]} columns: open more first")
        # No mask and new tokens that see only each other: SDPA's own causal mask.
        causal = mask is None and past == 0 and length > 1
        return self._blocks(x, cos, sin, mask, causal, cache.keys, cache.values, past)

    def greedy_tokens(
        self,
        cache: Any,
        input_ids: torch.Tensor,
        head: torch.Tensor,
        lo: int,
        hi: int,
        count: int,
        local_positions: torch.Tensor | None = None,
        patches: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A whole greedy action in one call, on a dense cache: feed the (B, L) new tokens,
        then `count` times take the most likely id in [lo, hi) (`head`: the (V, D) output
        embedding) and feed it (all but the last, which waits for the next observation) ->
        (B, count) int64 ids.

        The same numbers as `__call__` on the tokens, then on each picked token, one call at a
        time; here the picked tokens never leave the function, so compiled it is one graph per
        environment step. The cache's columns [length, length + L + count - 1) must be opened
        first; the caller advances it by as many afterwards."""
        if not cache.dense:
            raise RuntimeError("greedy_tokens needs a dense cache (no masked column)")
        length = input_ids.shape[1]
        past, fed = cache.length, length + count - 1
        if cache.keys[0].shape[2] < past + fed:
            raise RuntimeError(f"KV cache of {cache.keys[0].shape[2]} columns: open more first")
        x = self.embedding(input_ids, local_positions, patches, patch_positions)  # (B, L, D)
        self.rotary.grow(past + fed)
        keys, values = cache.keys, cache.values
        if self.compiled is not None:
            # Whole tensors and a length, no views: the compiled call's guards check a view's
            # base in Python on every call (~0.1 ms more per call, measured).
            tokens, new_keys, new_values = self.compiled(
                x, self.rotary.cos, self.rotary.sin, keys, values, past, head, lo, hi, count
            )
            for buffer, new_k in zip(keys, new_keys, strict=True):
                buffer[:, :, past : past + fed] = new_k
            for buffer, new_v in zip(values, new_values, strict=True):
                buffer[:, :, past : past + fed] = new_v
            return tokens
        cos, sin = self.rotary.span(past, fed)  # (L + count - 1, 1, 1, d)
        mask = causal_padding_mask(None, length, past, x.device)
        causal = mask is None and past == 0 and length > 1
        hidden = self._blocks(x, cos[:length], sin[:length], mask, causal, keys, values, past)

        def feed(token: torch.Tensor, at: int) -> torch.Tensor:
            c, s = cos[at : at + 1], sin[at : at + 1]
            return self._blocks(token, c, s, None, False, keys, values, past + at)

        return self._pick(hidden, head[lo:hi], lo, count, length, feed)

    def _pick(
        self,
        hidden: torch.Tensor,
        head: torch.Tensor,
        offset: int,
        count: int,
        length: int,
        feed: Any,
    ) -> torch.Tensor:
        """`count` greedy tokens from the hidden state (B, D) after the observation's `length`
        tokens: argmax(hidden @ head.T) + offset, each but the last embedded and fed at step
        column length + j (`feed(embedded (B, 1, D), column)` -> the next hidden state)."""
        picked = []
        for j in range(count):
            token = (hidden @ head.T).argmax(dim=-1) + offset  # (B,)
            picked.append(token)
            if j + 1 < count:
                hidden = feed(self.embed_ids(token[:, None]), length + j)
        return torch.stack(picked, dim=1)  # (B, count)

    def _blocks(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        past: int,
    ) -> torch.Tensor:
        """The blocks and the final norm over embedded x (B, L, D) -> (B, D): each layer's new
        keys and values written into its (B, H, capacity, d) buffers at [past, past + L), as
        `KVCache.update` writes them, attention over columns [0, past + L)."""
        length = x.shape[1]
        stop = past + length
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            q, k, v = layer.project(x, cos, sin)
            index = layer.layer_idx
            keys[index][:, :, past:stop] = k
            values[index][:, :, past:stop] = v
            k, v = keys[index][:, :, :stop], values[index][:, :, :stop]  # (B, H, past + L, d)
            layer_mask, is_causal = mask, causal
            if i == last and length > 1:
                # Only the last position's output is returned, and the last layer's other
                # outputs feed nothing (its keys and values are already written): one query.
                q, x = q[:, :, -1:], x[:, -1:]
                layer_mask, is_causal = None if mask is None else mask[:, :, -1:], False
            x = layer.finish(x, layer.attend(q, k, v, layer_mask, is_causal))
        return self.norm(x[:, -1])  # (B, D)

    def _greedy_split(
        self,
        x: torch.Tensor,
        cos_table: torch.Tensor,
        sin_table: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        past: int,
        head: torch.Tensor,
        lo: int,
        hi: int,
        count: int,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """`greedy_tokens` without writing the cache (the compiled form): x (B, L, D) attends
        over the cached columns [0, past) of `keys`/`values` (every one visible) and causally
        over the step's own new keys, in one softmax over both -> (tokens (B, count), new keys
        and values per layer (B, H, L + count - 1, d)); the rotary angles come from the
        (T, 1, 1, d) tables at positions past, past + 1, ..."""
        length = x.shape[1]
        fed = length + count - 1
        cos = cos_table[past : past + fed]  # (L + count - 1, 1, 1, d)
        sin = sin_table[past : past + fed]
        old_keys = [k[:, :, :past] for k in keys]  # (B, H, past, d), read only
        old_values = [v[:, :, :past] for v in values]
        head = head[lo:hi]
        last = len(self.layers) - 1
        new_keys: list[Any] = [None] * len(self.layers)
        new_values: list[Any] = [None] * len(self.layers)

        def attend(i: int, q: torch.Tensor) -> torch.Tensor:
            index = self.layers[i].layer_idx
            # More than one query: the prefill, whose queries are its new keys (causal). On the
            # CPU its flash form measured faster; for one query, the plain form.
            causal = bool(q.shape[2] > 1)
            flash = causal and q.device.type == "cpu"
            k_old, v_old = old_keys[index], old_values[index]
            return attend_split(q, k_old, v_old, new_keys[i], new_values[i], causal, flash)

        def forward(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            fed = x.shape[1]
            for i, layer in enumerate(self.layers):
                q, k, v = layer.project(x, c, s)
                if new_keys[i] is None:
                    new_keys[i], new_values[i] = k, v
                else:
                    new_keys[i] = torch.cat((new_keys[i], k), dim=2)
                    new_values[i] = torch.cat((new_values[i], v), dim=2)
                if i == last and fed > 1:
                    q, x = q[:, :, -1:], x[:, -1:]  # as in `_blocks`: the last position only
                x = layer.finish(x, attend(i, q))
            return self.norm(x[:, -1])

        hidden = forward(x, cos[:length], sin[:length])
        tokens = self._pick(
            hidden,
            head,
            lo,
            count,
            length,
            lambda token, at: forward(token, cos[at : at + 1], sin[at : at + 1]),
        )
        return tokens, new_keys, new_values
