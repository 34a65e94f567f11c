"""Attention masks and global positions of left-padded, cached and ragged rows, computed here only.

Two rules, used by the training forward, the cached eager step and the static (CUDA-graph) step:

* attention: a query sees the real keys at or before its own column, and always its own key, so
  that a padded query keeps a finite softmax (an all-masked row gives NaN, which the next layer's
  matmul would spread);
* position: a token's global position is the count of real tokens before it.

Columns are cache columns: with a cache of P columns and L new tokens, the new tokens sit at
columns P .. P + L - 1. The `_at` variants take the new columns as a tensor (a start held in a
0-d tensor), so a fixed-shape step computes them without a Python number.
"""

from __future__ import annotations

import torch

from gato.tokens.batch import PAD_SEGMENT, SHARED_SEGMENT

__all__ = [
    "causal_mask",
    "causal_padding_mask",
    "causal_padding_mask_at",
    "causal_segment_mask",
    "position_ids",
    "position_ids_at",
]


def _keep(
    query_columns: torch.Tensor, key_columns: torch.Tensor, key_mask: torch.Tensor | None
) -> torch.Tensor:
    """(L,) query and (K,) key columns, (B, K) bool real keys or None -> (B | 1, 1, L, K) bool."""
    keep = key_columns[None, :] <= query_columns[:, None]  # (L, K) causal
    if key_mask is None:
        return keep[None, None]
    own = key_columns[None, :] == query_columns[:, None]
    return ((keep & key_mask[:, None, :]) | own).unsqueeze(1)  # (B, 1, L, K)


def causal_mask(length: int, device: torch.device) -> torch.Tensor:
    """(L, L) bool, True where query i may see key j (j <= i)."""
    columns = torch.arange(length, device=device)
    return _keep(columns, columns, None)[0, 0]


def causal_padding_mask(
    attention_mask: torch.Tensor | None, length: int, past_length: int, device: torch.device
) -> torch.Tensor | None:
    """The (B | 1, 1, L, P + L) bool mask for SDPA (True = attend) of L new tokens after P cached
    columns, or None when SDPA's own `is_causal` (no cache) or full attention (one new token, no
    padding) is exact.

    `attention_mask`: (B, P + L) (or longer: its last P + L columns count) 1 on real tokens, or
    None for none padded. Without a cache, a mask whose ones all come before its zeros (right
    padding, or none) needs no mask: causal attention never lets a real token see the padding
    after it.
    """
    if past_length == 0 and (
        attention_mask is None or bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())
    ):
        return None
    if attention_mask is None and length == 1:
        return None
    total = past_length + length
    query_columns = torch.arange(past_length, total, device=device)
    key_columns = torch.arange(total, device=device)
    key_mask = None if attention_mask is None else attention_mask[:, -total:].bool()
    return _keep(query_columns, key_columns, key_mask)


def causal_segment_mask(
    mask: torch.Tensor | None,
    segment_ids: torch.Tensor,
    shared: int = SHARED_SEGMENT,
    padding: int = PAD_SEGMENT,
) -> torch.Tensor:
    """Packed rows, no cache: `mask` ((B | 1, 1, L, L) from `causal_padding_mask`, or None for
    plain causal) further limited to keys of the query's own segment and of the row's shared
    prefix. `segment_ids`: (B, L) int64, one id per packed sequence of a row, `shared` on the
    prefix every sequence sees (a prompt), `padding` on padding (which sees no prefix).
    -> (B, 1, L, L). A token always keeps its own key."""
    length = segment_ids.shape[1]
    if mask is None:
        mask = causal_mask(length, segment_ids.device)[None, None]
    query, key = segment_ids[:, None, :, None], segment_ids[:, None, None, :]
    return mask & ((query == key) | ((key == shared) & (query != padding)))


def causal_padding_mask_at(
    key_mask: torch.Tensor, query_columns: torch.Tensor, key_columns: torch.Tensor
) -> torch.Tensor:
    """Fixed shapes: (B, C) bool real columns of a cache, (L,) new columns, (C,) all columns
    (arange) -> (B, 1, L, C) bool, the rule of `causal_padding_mask`."""
    return _keep(query_columns, key_columns, key_mask)


def _ranks(mask: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C) int64: real tokens before each column (the column's own counted, - 1)."""
    return mask.long().cumsum(-1) - 1


def position_ids(
    attention_mask: torch.Tensor | None,
    length: int,
    past_length: int = 0,
    batch_size: int = 1,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(B, L) global positions of the L new tokens: each token's count of real tokens before it.

    `attention_mask`: (B, P + L) 1 on real tokens (its last L columns are the new tokens), or None
    for no padding (positions P .. P + L - 1 in every one of `batch_size` rows).
    """
    if attention_mask is None:
        positions = torch.arange(past_length, past_length + length, device=device)
        return positions.expand(batch_size, length)
    return _ranks(attention_mask)[:, -length:].clamp(min=0)


def position_ids_at(mask: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Fixed shapes: (B, C) bool real columns of a cache, (L,) new columns -> (B, L) positions,
    the rule of `position_ids`."""
    return _ranks(mask).index_select(1, columns).clamp(min=0)
