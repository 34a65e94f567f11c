"""The CPU training step's precision choices: fp32 attention where a gradient is needed, and the
head's chunk size; both must leave the results those of the plain computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import make_config

import gato.modeling.layers as layers
from gato.modeling.layers import GatoBlock
from gato.modeling.loss import (
    CPU_LOSS_CHUNK_ROWS,
    LOSS_CHUNK_ROWS,
    default_chunk_rows,
    linear_cross_entropy,
)


def _qkv(requires_grad: bool) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    return tuple(
        torch.randn(2, 4, 12, 8, dtype=torch.bfloat16).requires_grad_(requires_grad)
        for _ in range(3)
    )


def _mask() -> torch.Tensor:
    # Two packed sequences per row, each attending causally to itself only.
    segment = torch.tensor([0] * 5 + [1] * 7)
    same = segment[:, None] == segment[None, :]
    return (same & torch.ones(12, 12, dtype=torch.bool).tril())[None, None]


def test_training_attention_on_the_cpu_runs_in_fp32_and_returns_the_input_dtype():
    block = GatoBlock(make_config(), 0).bind(training=False)
    q, k, v = _qkv(requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block.attend(q, k, v, _mask())
    assert out.dtype == torch.bfloat16
    # The fp32 computation on the same inputs, to the last bit.
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=_mask())
    assert torch.equal(out, want.to(torch.bfloat16))
    out.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16


def test_attention_without_a_gradient_keeps_the_input_dtype_computation(monkeypatch):
    block = GatoBlock(make_config(), 0).bind(training=False)
    q, k, v = _qkv(requires_grad=False)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=_mask())
    assert torch.equal(block.attend(q, k, v, _mask()), want)
    # Switched off, a training call computes in bf16 as well.
    monkeypatch.setattr(layers, "CPU_TRAINING_ATTENTION_DTYPE", None)
    q, k, v = _qkv(requires_grad=True)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=_mask())
    assert torch.equal(block.attend(q, k, v, _mask()), want)


def test_fp32_attention_differs_from_bf16_attention():
    # Guards the two tests above against comparing a computation with itself.
    q, k, v = _qkv(requires_grad=False)
    bf16 = F.scaled_dot_product_attention(q, k, v, attn_mask=_mask())
    fp32 = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=_mask())
    assert not torch.equal(bf16, fp32.to(torch.bfloat16))


def test_default_chunk_rows_by_device():
    assert default_chunk_rows(torch.device("cpu")) == CPU_LOSS_CHUNK_ROWS == 128
    assert default_chunk_rows(torch.device("cuda")) == LOSS_CHUNK_ROWS == 1024


def test_cpu_default_chunks_give_the_plain_head_loss_and_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(300, 16, requires_grad=True)  # more targets than one CPU chunk
    weight = (0.1 * torch.randn(500, 16)).requires_grad_()
    labels = torch.randint(0, 500, (300,))
    plain = F.cross_entropy(hidden @ weight.T, labels, reduction="sum")
    want = torch.autograd.grad(plain, (hidden, weight))
    fused = linear_cross_entropy(hidden, weight, labels)
    got = torch.autograd.grad(fused, (hidden, weight))
    torch.testing.assert_close(fused, plain, atol=1e-3, rtol=1e-6)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)
    explicit = linear_cross_entropy(hidden, weight, labels, chunk_rows=CPU_LOSS_CHUNK_ROWS)
    assert torch.equal(fused, explicit)


def test_negative_chunk_rows_is_refused():
    with pytest.raises(ValueError, match="chunk_rows=-1 must be >= 0"):
        linear_cross_entropy(
            torch.randn(3, 4), torch.randn(5, 4), torch.zeros(3, dtype=torch.long), -1
        )
