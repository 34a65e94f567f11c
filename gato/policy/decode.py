"""`CachedForward`: GatoModel's forward over a `KVCache` as plain tensor functions.

A decoding step of a small model on a CPU is bound by per-operation overhead, not arithmetic: a
one-token forward of the tiny preset does ~4 MFLOP but spent ~0.5 ms in `nn.Module` calls, output
objects and input checks. This runs the same operations, in the same order, on the same weights,
with none of that: weights are read once into tuples, the rotary angles come from a table built
once (the same fp32 values `rotary_cos_sin` computes), queries and keys are rotated in one call,
and the one-token step of a dense cache needs no mask. Outputs equal the model's forward to float
rounding (tested against it, ragged rows and patches included).

Used by `GatoPolicy` on its eager path. A feed-forward part other than the dense MLP (PathNet's,
say) is called as its module; only the known parts are flattened.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gato.model import GatoBlock, GatoMLP, GatoModel, _attention_mask, rotary_cos_sin

__all__ = ["CachedForward"]


class CachedForward:
    """`forward(input_ids, ...)` on top of a `KVCache` -> (B, D) final hidden state of the last
    position of each row, as `GatoModel.forward(..., past_key_values=cache).last_hidden_state[:,
    -1]` would give it. Built from the model's parameters at construction (the tensors, not
    copies: in-place weight updates are seen, replaced parameters are not)."""

    def __init__(self, model: GatoModel, table_size: int | None = None) -> None:
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

    def _table(self, size: int) -> None:
        """cos, sin (size, d) of positions [0, size): the model's own angle computation."""
        if self._cos.shape[0] >= size:
            return
        positions = torch.arange(size, device=self.tokens.device)[None]  # (1, P)
        cos, sin = rotary_cos_sin(positions, self.head_dim, self.theta)  # (1, 1, P, d)
        # Cast as `apply_rotary` casts them: to the activations' dtype.
        self._cos, self._sin = cos[0, 0].to(self.tokens.dtype), sin[0, 0].to(self.tokens.dtype)

    @staticmethod
    def _norm(module: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)

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
        if local_positions is None and (patches is None or patches.shape[0] == 0):
            x = F.embedding(input_ids, self.tokens)  # (B, L, D)
        else:
            x = self.model.embedding(input_ids, local_positions, patches, patch_positions)
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
        heads, d = self.num_heads, self.head_dim
        half = d // 2
        for norm_attn, w_qkv, w_out, norm_mlp, mlp, layer in self.layers:
            h = self._norm(norm_attn, x)
            qkv = F.linear(h, w_qkv).view(b, length, 3, heads, d)
            qk = qkv[:, :, :2]  # (B, L, 2, H, d): queries and keys rotated together
            rotated = torch.cat((-qk[..., half:], qk[..., :half]), dim=-1)
            qk = qk * cos + rotated * sin
            q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, L, d)
            v = qkv[:, :, 2].transpose(1, 2)
            k, v = cache.update(k, v, layer)  # (B, H, past + L, d)
            is_causal = mask is None and k.shape[2] == length and length > 1
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
            x = x + F.linear(a.transpose(1, 2).reshape(b, length, heads * d), w_out)
            h = self._norm(norm_mlp, x)
            if isinstance(mlp, tuple):
                x = x + F.linear(F.gelu(F.linear(h, mlp[0])), mlp[1])
            else:
                x = x + mlp(h)
        return self._norm(self.norm, x[:, -1])  # (B, D)
