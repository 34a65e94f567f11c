"""`CachedForward`: GatoModel's forward over a `KVCache` as plain tensor functions.

A decoding step of a small model on a CPU is bound by per-operation overhead, not arithmetic: a
one-token forward of the tiny preset does ~4 MFLOP but spent ~0.5 ms in `nn.Module` calls, output
objects and input checks. This runs the same operations, in the same order, on the same weights,
with none of that: weights are read once into tuples, the rotary angles come from a table built
once (the same fp32 values `rotary_cos_sin` computes), queries and keys are rotated in one call,
and the one-token step of a dense cache needs no mask. In a prefill the last layer computes the
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
say) is called as its module; only the known parts are flattened.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gato.modeling.model import GatoBlock, GatoMLP, GatoModel, _attention_mask, rotary_cos_sin

__all__ = ["CachedForward", "attend_split"]

# SDPA's CPU flash kernel, which also returns each query's log-sum-exp (B, H, L) fp32: what
# merging two attention passes needs. Inductor calls it as it is (no decomposition).
_flash_cpu = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def attend_split(
    q: torch.Tensor,
    k_old: torch.Tensor,
    v_old: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    causal: bool,
    flash: bool = False,
) -> torch.Tensor:
    """Attention of queries q (B, H, Lq, d) over cached keys (B, H, P, d), every one visible,
    then new keys (B, H, n, d), of which query j sees those up to n - Lq + j (`causal`: Lq = n,
    the queries are the new tokens; otherwise Lq = 1 and it sees them all) -> (B, H, Lq, d).

    The same numbers as one softmax over the concatenated keys, without concatenating them
    (a copy of the whole cache). `flash`: two passes of SDPA's CPU flash kernel merged by their
    log-sum-exps; otherwise scores of both parts, one softmax, two products."""
    if k_old.shape[2] == 0:
        return F.scaled_dot_product_attention(q, k_new, v_new, is_causal=causal)
    if flash:
        out_old, lse_old = _flash_cpu(q, k_old, v_old)  # lse: (B, H, Lq) fp32
        out_new, lse_new = _flash_cpu(q, k_new, v_new, is_causal=causal)
        lse = torch.logaddexp(lse_old, lse_new)
        merged = out_old * (lse_old - lse).exp().unsqueeze(-1)
        merged = merged + out_new * (lse_new - lse).exp().unsqueeze(-1)
        return merged.to(q.dtype)
    scale = q.shape[-1] ** -0.5
    scores_old = q @ k_old.transpose(-1, -2) * scale  # (B, H, Lq, P)
    scores_new = q @ k_new.transpose(-1, -2) * scale  # (B, H, Lq, n)
    if causal:
        n = k_new.shape[2]
        later = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores_new = scores_new.masked_fill(later, float("-inf"))
    probs = torch.cat((scores_old, scores_new), dim=-1).softmax(dim=-1)
    split = scores_old.shape[-1]
    return probs[..., :split] @ v_old + probs[..., split:] @ v_new


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
        self.num_heads = cfg.num_attention_heads
        self.head_dim = cfg.head_dim
        self.theta = cfg.rope_theta
        self.tokens = model.embedding.tokens.weight
        self.layers: list[tuple[Any, ...]] = []
        for block in model.layers:
            if type(block) is not GatoBlock:
                raise TypeError(f"CachedForward: unknown block type {type(block).__name__}")
            mlp = (
                (block.mlp.fc_in.weight, block.mlp.fc_out.weight)
                if type(block.mlp) is GatoMLP
                else block.mlp
            )
            self.layers.append(
                (
                    block.norm_attn,
                    block.attn.qkv.weight,
                    block.attn.out.weight,
                    block.norm_mlp,
                    mlp,
                    block.attn.layer_idx,
                )
            )
        self.norm = model.norm
        self._cos = self._sin = torch.empty(0)
        self._table(table_size or 2 * cfg.max_position_embeddings)
        self.compiled = None
        if compile:
            # Sizes symbolic (dynamic=True): the cache length changes every call and one graph
            # serves every length. On the CPU the C++ wrapper drops the per-kernel overhead.
            cpu = self.tokens.device.type == "cpu"
            options = {"cpp_wrapper": True} if cpu else None
            self.compiled = torch.compile(self._greedy_split, dynamic=True, options=options)

    def _table(self, size: int) -> None:
        """cos, sin (size, d) of positions [0, size): the model's own angle computation."""
        if self._cos.shape[0] >= size:
            return
        positions = torch.arange(size, device=self.tokens.device)[None]  # (1, P)
        cos, sin = rotary_cos_sin(positions, self.head_dim, self.theta)  # (1, 1, P, d)
        # Cast as `apply_rotary` casts them: to the activations' dtype.
        # Own tensors (not views of the (1, 1, P, d) ones): cheaper guards where compiled.
        self._cos = cos[0, 0].to(self.tokens.dtype).clone()
        self._sin = sin[0, 0].to(self.tokens.dtype).clone()

    @staticmethod
    def _norm(module: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)

    def _embed(
        self,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor | None,
        patches: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
    ) -> torch.Tensor:
        if local_positions is None and (patches is None or patches.shape[0] == 0):
            return F.embedding(input_ids, self.tokens)  # (B, L, D)
        return self.model.embedding(input_ids, local_positions, patches, patch_positions)

    def __call__(
        self,
        cache: Any,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor | None = None,
        patches: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Feed (B, L) new tokens at the cache's current length (its new columns already opened
        with `open_columns`; the caller advances it afterwards) -> (B, D)."""
        b, length = input_ids.shape
        past = cache.length
        x = self._embed(input_ids, local_positions, patches, patch_positions)
        self._table(past + length)
        if cache.dense:
            mask = _attention_mask(None, length, past, x.device)  # None for one token
            # Every row sits at the same positions: one (L, 1, 1, d) slice of the table.
            cos = self._cos[past : past + length, None, None]
            sin = self._sin[past : past + length, None, None]
        else:
            used = cache.mask[:, : past + length]  # (B, C)
            mask = _attention_mask(used, length, past, x.device)
            positions = (used.long().cumsum(-1) - 1)[:, -length:].clamp(min=0)  # (B, L)
            cos = self._cos[positions][:, :, None, None]  # (B, L, 1, 1, d)
            sin = self._sin[positions][:, :, None, None]
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
        x = self._embed(input_ids, local_positions, patches, patch_positions)
        self._table(past + fed)
        keys, values = cache.keys, cache.values
        if self.compiled is not None:
            # Whole tensors and a length, no views: the compiled call's guards check a view's
            # base in Python on every call (~0.1 ms more per call, measured).
            tokens, new_keys, new_values = self.compiled(
                x, self._cos, self._sin, keys, values, past, head, lo, hi, count
            )
            for buffer, new_k in zip(keys, new_keys, strict=True):
                buffer[:, :, past : past + fed] = new_k
            for buffer, new_v in zip(values, new_values, strict=True):
                buffer[:, :, past : past + fed] = new_v
            return tokens
        cos = self._cos[past : past + fed, None, None]  # (L + count - 1, 1, 1, d)
        sin = self._sin[past : past + fed, None, None]
        mask = _attention_mask(None, length, past, x.device)
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
                hidden = feed(F.embedding(token[:, None], self.tokens), length + j)
        return torch.stack(picked, dim=1)  # (B, count)

    def _project(
        self, layer: tuple[Any, ...], x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D) -> rotated queries, rotated keys, values, each (B, H, L, d)."""
        norm_attn, w_qkv = layer[0], layer[1]
        b, length, _ = x.shape
        heads, d = self.num_heads, self.head_dim
        half = d // 2
        qkv = F.linear(self._norm(norm_attn, x), w_qkv).view(b, length, 3, heads, d)
        qk = qkv[:, :, :2]  # (B, L, 2, H, d): queries and keys rotated together
        rotated = torch.cat((-qk[..., half:], qk[..., :half]), dim=-1)
        qk = qk * cos + rotated * sin
        q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, L, d)
        return q, k, qkv[:, :, 2].transpose(1, 2)

    def _finish(self, layer: tuple[Any, ...], x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The rest of a block: x (B, L, D) + out(a), a (B, H, L, d), then the MLP."""
        w_out, norm_mlp, mlp = layer[2], layer[3], layer[4]
        b, length, _ = x.shape
        x = x + F.linear(a.transpose(1, 2).reshape(b, length, -1), w_out)
        h = self._norm(norm_mlp, x)
        if isinstance(mlp, tuple):
            return x + F.linear(F.gelu(F.linear(h, mlp[0])), mlp[1])
        return x + mlp(h)

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
            q, k, v = self._project(layer, x, cos, sin)
            index = layer[5]
            keys[index][:, :, past:stop] = k
            values[index][:, :, past:stop] = v
            k, v = keys[index][:, :, :stop], values[index][:, :, :stop]  # (B, H, past + L, d)
            layer_mask, is_causal = mask, causal
            if i == last and length > 1:
                # Only the last position's output is returned, and the last layer's other
                # outputs feed nothing (its keys and values are already written): one query.
                q, x = q[:, :, -1:], x[:, -1:]
                layer_mask, is_causal = None if mask is None else mask[:, :, -1:], False
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=layer_mask, is_causal=is_causal)
            x = self._finish(layer, x, a)
        return self._norm(self.norm, x[:, -1])  # (B, D)

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
        and values per layer (B, H, L + count - 1, d)); the rotary angles come from the (T, d)
        tables at positions past, past + 1, ..."""
        length = x.shape[1]
        fed = length + count - 1
        cos = cos_table[past : past + fed, None, None]  # (L + count - 1, 1, 1, d)
        sin = sin_table[past : past + fed, None, None]
        old_keys = [k[:, :, :past] for k in keys]  # (B, H, past, d), read only
        old_values = [v[:, :, :past] for v in values]
        head = head[lo:hi]
        last = len(self.layers) - 1
        new_keys: list[Any] = [None] * len(self.layers)
        new_values: list[Any] = [None] * len(self.layers)

        def attend(i: int, q: torch.Tensor) -> torch.Tensor:
            index = self.layers[i][5]
            # More than one query: the prefill, whose queries are its new keys (causal). On the
            # CPU its flash form measured faster; for one query, the plain form.
            causal = bool(q.shape[2] > 1)
            flash = causal and q.device.type == "cpu"
            k_old, v_old = old_keys[index], old_values[index]
            return attend_split(q, k_old, v_old, new_keys[i], new_values[i], causal, flash)

        def forward(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            fed = x.shape[1]
            for i, layer in enumerate(self.layers):
                q, k, v = self._project(layer, x, c, s)
                if new_keys[i] is None:
                    new_keys[i], new_values[i] = k, v
                else:
                    new_keys[i] = torch.cat((new_keys[i], k), dim=2)
                    new_values[i] = torch.cat((new_values[i], v), dim=2)
                if i == last and fed > 1:
                    q, x = q[:, :, -1:], x[:, -1:]  # as in `_blocks`: the last position only
                x = self._finish(layer, x, attend(i, q))
            return self._norm(self.norm, x[:, -1])

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
