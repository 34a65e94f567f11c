"""The decoder block: pre-norm attention with RoPE and PyTorch SDPA, then the feed-forward part.

A block is three pieces, which every decoding path arranges around its own cache handling:

* `project`: x (B, L, D) -> queries, keys, values (B, H, L, d), queries and keys rotated;
* `attend`: SDPA of the queries over the keys and values (a mask, or `is_causal`);
* `finish`: the output projection, the residual, the feed-forward part, the residual.

`GatoBlock.forward` (training, `GatoModel.forward`) calls them with a `transformers` cache;
`gato.inference.eager` writes its cache's columns in between, `gato.inference.static` does so at
tensor-valued columns. The pieces live on `BoundBlock`: the block's tensors read once, so that a
decoding step that calls them per layer and per token pays no `nn.Module` attribute lookups or
calls (measured: ~0.7 us per lookup, ~3.5 us per module call, against ~100 us of operations per
layer of a one-token step of the tiny model). `GatoBlock.bind()` makes one; the block's own
forward binds itself on every call (the tensors of that moment, as a forward reads them).

`attend_split` is the attention of the compiled eager step, whose cache is read in two parts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer

from gato.modeling.config import GatoConfig
from gato.modeling.ffn import feed_forward
from gato.modeling.masks import causal_mask
from gato.modeling.rotary import apply_rotary

__all__ = ["BoundBlock", "GatoAttention", "GatoBlock", "attend_split", "bind_layer_norm"]

# SDPA's CPU flash kernel, which also returns each query's log-sum-exp (B, H, L) fp32: what
# merging two attention passes needs. Inductor calls it as it is (no decomposition).
_flash_cpu = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu

CPU_TRAINING_ATTENTION_DTYPE: torch.dtype | None = torch.float32
"""The dtype of SDPA on the CPU when its result needs a gradient (None: the inputs' own). The
CPU flash kernel's bf16 backward took twice its fp32 one (25 against 11.5 ms for one tiny-model
layer at batch 16 x 256, 2 threads; its forward 4.3 against 6.2 ms): under bf16 autocast the
default run's step took 15-21% less with the attention in fp32 (`benchmarks/cpu_step_choices.py`).
Inference keeps the inputs' dtype, where bf16 is the faster."""


def bind_layer_norm(module: nn.LayerNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    """`module`'s forward with its tensors read once."""
    return functools.partial(
        F.layer_norm,
        normalized_shape=module.normalized_shape,
        weight=module.weight,
        bias=module.bias,
        eps=module.eps,
    )


class GatoAttention(nn.Module):
    """The attention's weights: a fused q/k/v projection and the output projection, no biases."""

    def __init__(self, config: GatoConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        inner = self.num_heads * self.head_dim
        self.qkv = nn.Linear(config.hidden_size, 3 * inner, bias=False)
        self.out = nn.Linear(inner, config.hidden_size, bias=False)
        self.out.residual_projection = True
        self.attention_dropout = config.attention_dropout


class BoundBlock:
    """A `GatoBlock`'s pieces over its tensors, read once (the tensors, not copies: in-place
    weight updates are seen, replaced parameters are not). `training`: apply dropout."""

    def __init__(self, block: GatoBlock, training: bool) -> None:
        attn = block.attn
        self._attention = attn
        self.num_heads = attn.num_heads
        self.head_dim = attn.head_dim
        self.norm_attn = bind_layer_norm(block.norm_attn)
        self.w_qkv = attn.qkv.weight
        self.w_out = attn.out.weight
        self.norm_mlp = bind_layer_norm(block.norm_mlp)
        self.feed_forward = block.mlp.bind()
        self.dropout = block.dropout.p if training else 0.0
        self.attention_dropout = attn.attention_dropout if training else 0.0

    @property
    def layer_idx(self) -> int:
        """Read only where a cache is indexed: `torch.compile` of a block specialises on every
        integer it reads, so reading it on the training path would compile each layer apart and
        run the layers past dynamo's recompile limit (8) eager."""
        return self._attention.layer_idx

    def project(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D), angles (B, L, 1, 1, d) or (L, 1, 1, d) -> rotated queries, rotated keys,
        values, each (B, H, L, d)."""
        b, length, _ = x.shape
        qkv = F.linear(self.norm_attn(x), self.w_qkv).view(
            b, length, 3, self.num_heads, self.head_dim
        )
        qk = apply_rotary(qkv[:, :, :2], cos, sin)  # (B, L, 2, H, d): rotated together
        q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, qkv[:, :, 2].transpose(1, 2)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """q (B, H, Lq, d) over k, v (B, H, Lk, d); mask (B | 1, 1, Lq, Lk) bool (True =
        attend) -> (B, H, Lq, d), in q's dtype."""
        dtype = CPU_TRAINING_ATTENTION_DTYPE
        if dtype is None or not q.requires_grad or q.device.type != "cpu" or q.dtype == dtype:
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attention_dropout, is_causal=is_causal
            )
        # Autocast would cast the inputs back to its own dtype.
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(
                q.to(dtype), k.to(dtype), v.to(dtype),
                attn_mask=mask, dropout_p=self.attention_dropout, is_causal=is_causal,
            )  # fmt: skip
        return out.to(q.dtype)

    def finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The rest of the block: x (B, L, D) + out(a), a (B, H, L, d), then + the feed-forward
        part of its norm -> (B, L, D)."""
        b, length, _ = x.shape
        h = F.linear(a.transpose(1, 2).reshape(b, length, -1), self.w_out)
        if self.dropout:
            h = F.dropout(h, self.dropout, True)
        x = x + h
        h = self.feed_forward(self.norm_mlp(x))
        if self.dropout:
            h = F.dropout(h, self.dropout, True)
        return x + h


class GatoBlock(GradientCheckpointingLayer):
    """Pre-norm decoder block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, config: GatoConfig, layer_idx: int) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = GatoAttention(config, layer_idx)
        self.norm_mlp = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = feed_forward(config)
        self.dropout = nn.Dropout(config.dropout)

    @property
    def layer_idx(self) -> int:
        return self.attn.layer_idx

    def bind(self, training: bool | None = None) -> BoundBlock:
        """The block's pieces over its current tensors; dropout when `training` (default: the
        module's mode)."""
        return BoundBlock(self, self.training if training is None else training)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
    ) -> torch.Tensor:
        """(B, L, D) -> (B, L, D). Positional tensors first: the checkpointing wrapper needs it.

        cos, sin: (B, L, 1, 1, d) angles (`rotary_cos_sin`); attention_mask: (B, 1, L, L_past +
        L) bool (True = attend) or None for plain causal attention (no cache) / full attention
        (a one-token step without padding)."""
        block = self.bind()
        q, k, v = block.project(hidden_states, cos, sin)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)  # (B, H, L_past + L, d)
        length = q.shape[2]
        is_causal = attention_mask is None and k.shape[2] == length and length > 1
        return block.finish(hidden_states, block.attend(q, k, v, attention_mask, is_causal))


def bind_blocks(layers: Sequence[nn.Module], who: str) -> list[BoundBlock]:
    """Every decoder block bound for inference (`GatoBlock.bind`); a block of another type is
    refused, since the decoding paths arrange this block's pieces and no other's."""
    for block in layers:
        if type(block) is not GatoBlock:
            raise TypeError(f"{who}: unknown block type {type(block).__name__}")
    return [block.bind(training=False) for block in layers]


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
        visible = causal_mask(k_new.shape[2], q.device)  # (n, n)
        scores_new = scores_new.masked_fill(~visible, float("-inf"))
    probs = torch.cat((scores_old, scores_new), dim=-1).softmax(dim=-1)
    split = scores_old.shape[-1]
    return probs[..., :split] @ v_old + probs[..., split:] @ v_new
