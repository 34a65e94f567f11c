"""`GatoModel`: Gato's embedding, a decoder-only transformer, the vocabulary head, the masked loss.

A `transformers.PreTrainedModel`: `save_pretrained` / `from_pretrained` (safetensors, tied
embedding), `AutoModel.from_pretrained` after `import gato.modeling.model`, gradient checkpointing
(`gradient_checkpointing_enable()`), a `DynamicCache` KV cache.

Decoder: our own pre-norm blocks (LayerNorm, PyTorch SDPA attention with `is_causal` when no mask
is needed, a two-matrix GELU MLP, no biases) rather than a `transformers` decoder fed
`inputs_embeds`. Measured with `benchmarks/train_step.py --compare-decoders` (decoder stack alone,
forward + backward, fp32, context 1024, 2-core CPU shared with other jobs, contenders timed in
turns, best step):

| decoder stack                             | tiny shape, batch 4, 1 thread | 79m, batch 1, 2 thr. |
| ----------------------------------------- | ----------------------------- | -------------------- |
| ours (GELU MLP, RoPE, SDPA is_causal)     | 8,275 tokens/s                | 158 tokens/s         |
| transformers GPTNeoXModel (GELU MLP)      | 8,124                         | 161                  |
| transformers LlamaModel (param-matched)   | 8,022                         | 163                  |

The stacks are equally fast (within the noise of a shared machine: all three are matmul-bound),
so speed does not decide; the rest does. The paper's sizes need a two-matrix GELU MLP (a SwiGLU MLP
at the stated FF size breaks the parameter budget), which Llama lacks; GPT-NeoX has it but brings
biases, partial rotary and its own mask and position handling, whereas Gato needs positions and
masks of its own (left-padded batched decoding over a cache, patch embeddings spliced in). Our
blocks are ~60 lines with no dependence on `transformers`' internal mask and cache interfaces,
which change between releases. Where we are faster end to end is the loss (below): a full
training step runs 1.34x (fp32) and 1.52x (bf16) the tokens/s of `LlamaForCausalLM` of the same
shape (`benchmarks/RESULTS.md`).

Global positions: Gato leaves them unstated; local positions only order tokens inside one
observation, and actions, separators and text carry none, so without a global position the model
could not tell the order of a sentence or of an action's dimensions. We use rotary embeddings
(RoPE) on queries and keys: no parameters, and attention depends only on relative distance, so a
deployed policy can slide its context window over a KV cache (drop the oldest entries) without
recomputing the rest, which learned absolute positions would forbid.

Forward (see `GatoModel.forward`): a `GatoBatch` goes in as `model(**batch.as_dict())`. The loss
projects only the hidden states that predict a target (the loss mask), and does so chunk by chunk
with the gradients computed on the way (`linear_cross_entropy`), so training never holds the
(B, L, 34112) logits (1.1 GB in fp32 at B=8, L=1024, twice that with their gradient); logits come
back for every position with `return_logits=True`, for the last position by default when no loss
mask is given (decoding), and not at all by default when a loss is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import ModelOutput

from gato.modeling.config import GatoConfig
from gato.modeling.embedding import (
    GatoEmbedding,
    ValueEmbedding,
    fourier_table,
    ordinal_embedding,
)
from gato.modeling.frames import FrameEmbedding
from gato.modeling.groups import (
    ACTION_GROUP,
    FRAME_GROUP,
    PLAIN,
    ActionGroupHead,
    GroupEmbedding,
    GroupLayout,
    group_layout,
)
from gato.modeling.layers import GatoBlock
from gato.modeling.loss import linear_cross_entropy
from gato.modeling.masks import causal_padding_mask, causal_segment_mask
from gato.modeling.masks import position_ids as default_position_ids
from gato.modeling.rotary import rotary_cos_sin
from gato.tokens.batch import PAD_SEGMENT, validate_batch
from gato.vocab import (
    CONTINUOUS_OFFSET,
    DISCRETE_OFFSET,
    NUM_CONTINUOUS_BINS,
    NUM_DISCRETE_VALUES,
    PAD_ID,
    PATCH_ID,
    TEXT_VOCAB_SIZE,
)

__all__ = ["GatoModel", "GatoModelOutput"]


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


@dataclass
class GatoModelOutput(ModelOutput):
    """What `GatoModel.forward` returns.

    Attributes:
        loss: () mean cross-entropy over the counted targets (when a loss mask was given).
        logits: (B, L, V) with `return_logits=True`, (B, 1, V) for the last position by default
            without a loss mask, else None.
        past_key_values: the KV cache to continue from (when `use_cache`).
        last_hidden_state: (B, L, D) after the final norm (features for value heads, probes).
        num_loss_tokens: () int64, targets counted in the loss.
        sequence_loss_sums: (B,) fp32 summed loss of each row's targets, without a gradient
            (per-task logging: divide by `sequence_loss_counts`).
        sequence_loss_counts: (B,) int64 targets counted in each row.
        inputs_embeds: (B, L', D) the transformer's input (grouped models: what an action head
            with `GatoConfig.action_head_skip` reads beside `last_hidden_state`), else None.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: Cache | None = None
    last_hidden_state: torch.Tensor | None = None
    num_loss_tokens: torch.Tensor | None = None
    sequence_loss_sums: torch.Tensor | None = None
    sequence_loss_counts: torch.Tensor | None = None
    inputs_embeds: torch.Tensor | None = None


class GatoModel(PreTrainedModel):
    """Gato: one decoder-only transformer over text, image patches, discrete and continuous ids."""

    config_class = GatoConfig
    config: GatoConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ["text", "image"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["GatoBlock"]
    _skip_keys_device_placement = ["past_key_values"]
    _tied_weights_keys = {"lm_head.weight": "embedding.tokens.weight"}

    def __init__(self, config: GatoConfig) -> None:
        super().__init__(config)
        config.check()
        self.embedding = GatoEmbedding(config)
        self.layers = nn.ModuleList(GatoBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        width = config.hidden_size
        ko, ka = config.continuous_observation_group, config.continuous_action_group
        self.groups = (
            GroupEmbedding(
                width,
                ko,
                ka,
                config.value_fourier_features,
                config.value_fourier_top,
                config.group_value_features,
                config.group_value_period,
                config.group_encoder_hidden,
            )
            if ko or ka
            else None
        )
        self.frames = FrameEmbedding(config) if config.frame_group else None
        self.action_head = (
            ActionGroupHead(width, ka, config.action_group_bins, config.action_head_skip)
            if ka
            else None
        )
        self.post_init()

    # -- transformers plumbing -------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embedding.tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embedding.tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear) and getattr(module, "keep_default_init", False):
            # PyTorch's own Linear initialisation (`groups.value_encoder`), through the
            # initialisers that leave loaded weights alone.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(module.in_features)
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Linear):
            # GPT-2's scaling: each block adds two residual branches, keep the stream's variance
            # from growing with depth.
            if getattr(module, "residual_projection", False):
                std = std / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
            if module is getattr(self, "lm_head", None):
                self._init_value_rows(module.weight)  # tied: the token table's rows
        elif isinstance(module, nn.Conv2d):
            # Convolutions are followed by GroupNorm, but a fan-in scale keeps the residual sum
            # of the patch block balanced from the first step.
            init.kaiming_normal_(module.weight, nonlinearity="linear")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            embedding = getattr(self, "embedding", None)
            if embedding is not None and module is embedding.tokens:
                self._init_value_rows(module.weight)
        elif isinstance(module, (ValueEmbedding, GroupEmbedding)):
            # A non-persistent buffer: loading leaves it unset, so it is made again here.
            init.copy_(module.multiples, fourier_table(module.num_frequencies, module.top))
        else:
            super()._init_weights(module)

    def _init_value_rows(self, weight: torch.Tensor) -> None:
        """The continuous-value bins' rows, by `config.value_embedding_init`."""
        if self.config.value_embedding_init != "smooth":
            return
        # A slice carries no `_is_hf_initialized` mark: check the whole weight (loaded weights
        # are never re-initialised).
        if getattr(weight, "_is_hf_initialized", False) or weight.device.type == "meta":
            return
        stop = CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS
        if weight.shape[0] < stop:
            raise ValueError(
                f"value_embedding_init='smooth' needs the continuous bins [{CONTINUOUS_OFFSET}, "
                f"{stop}) in the vocabulary; vocab_size is {weight.shape[0]}"
            )
        rows = ordinal_embedding(
            NUM_CONTINUOUS_BINS, weight.shape[1], self.config.initializer_range
        )
        weight[CONTINUOUS_OFFSET:stop].copy_(rows.to(weight.device, weight.dtype))

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        local_positions: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
        patches: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        return_logits: bool | None = None,
        validate: bool = True,
        labels: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> GatoModelOutput:
        """Embed, decode, and score a batch (or continue from a KV cache).

        Args:
            input_ids: (B, L) int64 ids; `PATCH_ID` where a patch sits. With a cache: the new
                tokens only.
            attention_mask: 1 on real tokens, 0 on padding. (B, L) without a cache; with one,
                (B, L_past + L) covering the cached tokens too (the transformers convention), so
                left-padded batches decode correctly. None = no padding. Right padding needs no
                mask at all (padding comes after every real token; its outputs are unused).
            local_positions: (B, L) int64 observation-local index, -1 = none.
            loss_mask: (B, L) bool, True on tokens that are prediction targets. Given, the loss
                is the mean cross-entropy of predicting token t from position t - 1 over every t
                with loss_mask[t] (and attention_mask[t]); with a cache, t - 1 must lie in the
                new tokens (the first new token's prediction came from the previous call).
            patches: (N, C, P, P) uint8 pixels, one per `PATCH_ID` in row-major order.
            patch_positions: (N, 4) int64 [row_lo, row_hi, col_lo, col_hi) position bins.
            position_ids: (B, L) int64 global positions; default: the count of real tokens
                before each token (from the attention mask and the cache length). A policy that
                drops the oldest cache entries to slide its window passes its own (RoPE only
                sees differences, so positions may keep growing past the context).
            past_key_values: a `DynamicCache` from a previous call, extended in place.
            use_cache: return a cache; default: when one is passed, or in eval mode without a
                loss mask (decoding) if `config.use_cache`.
            return_logits: True: logits for every position (B, L, V); False: none; None: the last
                position's logits (B, 1, V) when no loss mask is given, else none.
            validate: check the inputs (a few small reductions; on by default, turn off in hot
                decoding loops that build inputs themselves).
            labels: (B, L) int64 target ids, where they differ from `input_ids` (training that
                hides some inputs, `mask_actions`, keeps their targets); None: `input_ids`.
            segment_ids: (B, L) int64 the packed sequence each token belongs to
                (`GatoBatch.segment_ids`): a query sees only keys of its own segment and of the
                row's shared prefix, and is numbered (RoPE) as if its sequence were alone after
                that prefix. None: a row is one sequence. Not with a cache (a decoding context
                is one sequence).

        Returns:
            `GatoModelOutput` (loss, logits, past_key_values, last_hidden_state,
            num_loss_tokens).
        """
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        if validate:
            self._validate(
                input_ids,
                attention_mask,
                local_positions,
                loss_mask,
                patches,
                patch_positions,
                position_ids,
                past_length,
                labels,
                segment_ids,
            )
        if use_cache is None:
            # A call that scores a loss (training or evaluating) keeps no cache: in an eval loop
            # it would hold every layer's keys and values for nothing.
            use_cache = past_key_values is not None or (
                self.config.use_cache and not self.training and loss_mask is None
            )
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()

        layout = None
        if self.config.grouped:
            # Positions are compact from here on: every (B, L) input becomes (B, L').
            x, layout = self.embed(
                input_ids, local_positions, patches, patch_positions, attention_mask, labels
            )
            if attention_mask is not None:
                cached = attention_mask[:, : attention_mask.shape[1] - input_ids.shape[1]]
                attention_mask = torch.cat([cached, layout.real.to(attention_mask.dtype)], 1)
            b, length = layout.real.shape
            if validate and length > self.config.max_position_embeddings:
                raise ValueError(
                    f"input_ids take {length} positions once grouped, more than the context "
                    f"max_position_embeddings={self.config.max_position_embeddings}"
                )
        else:
            x = self.embedding(input_ids, local_positions, patches, patch_positions)  # (B, L, D)
            b, length = input_ids.shape
        mask = causal_padding_mask(attention_mask, length, past_length, input_ids.device)
        if segment_ids is not None:
            if layout is not None:
                segment_ids = layout.gather(segment_ids, PAD_SEGMENT)  # (B, L')
            mask = causal_segment_mask(mask, segment_ids)  # (B, 1, L, L)
            if position_ids is None:
                # A packed sequence's tokens are numbered as if it were alone in its context
                # (after the row's prompt, if any), as at inference: the keys each one sees.
                position_ids = mask[:, 0].sum(-1) - 1  # (B, L)
        if position_ids is None:
            position_ids = default_position_ids(
                attention_mask, length, past_length, b, input_ids.device
            )
        cos, sin = rotary_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)
        cache = past_key_values if use_cache else None
        embedded = x if layout is not None else None
        for block in self.layers:
            x = block(x, cos, sin, attention_mask=mask, past_key_values=cache)
        hidden = self.norm(x)  # (B, L, D)

        loss = num_loss_tokens = row_sums = row_counts = None
        if loss_mask is not None and layout is not None:
            loss, num_loss_tokens, row_sums, row_counts = self._grouped_loss(
                hidden, embedded, layout, input_ids if labels is None else labels, loss_mask
            )
        elif loss_mask is not None:
            loss, num_loss_tokens, row_sums, row_counts = self._masked_loss(
                hidden, input_ids if labels is None else labels, loss_mask, attention_mask
            )
        logits = None
        if return_logits:
            logits = self._logits(hidden)  # (B, L, V)
        elif return_logits is None and loss_mask is None:
            logits = self._logits(hidden[:, -1:])  # (B, 1, V)
        return GatoModelOutput(
            loss=loss,
            logits=logits,
            past_key_values=past_key_values if use_cache else None,
            last_hidden_state=hidden,
            num_loss_tokens=num_loss_tokens,
            sequence_loss_sums=row_sums,
            sequence_loss_counts=row_counts,
            inputs_embeds=embedded,
        )

    def embed(
        self,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor | None = None,
        patches: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        right_align: bool | None = None,
    ) -> tuple[torch.Tensor, GroupLayout]:
        """The transformer's input of a (B, L) batch with grouped values -> (x (B, L', D), its
        `GroupLayout`). `attention_mask`: (B, L) over these tokens only. `right_align`: None
        infers it (rows end at the last position unless a row ends in padding)."""
        cfg = self.config
        if attention_mask is not None:
            attention_mask = attention_mask[:, -input_ids.shape[1] :]
        if right_align is None:
            right_align = attention_mask is None or bool(attention_mask[:, -1].bool().all())
        layout = group_layout(
            input_ids if labels is None else labels,
            local_positions,
            attention_mask,
            cfg.continuous_observation_group,
            cfg.continuous_action_group,
            right_align,
            cfg.keep_separator,
            cfg.frame_group,
        )
        ids = layout.gather(input_ids, PAD_ID)  # (B, L')
        local = None if local_positions is None else layout.gather(local_positions, -1)
        dtype = self.embedding.tokens.weight.dtype
        b, compact = layout.real.shape
        grouped = (
            self.groups(layout, input_ids, dtype)
            if self.groups is not None
            else torch.zeros(b, compact, cfg.hidden_size, dtype=dtype, device=input_ids.device)
        )  # (B, L', D)
        if self.frames is not None and patches is not None and patches.shape[0]:
            grouped, patches, patch_positions = self._embed_frames(
                layout, input_ids, patches, patch_positions, grouped
            )
            # A frame's position holds no patch of its own: the lookup it replaces is padding's.
            ids = ids.masked_fill(layout.compact_kind == FRAME_GROUP, PAD_ID)
        replace = (layout.compact_kind != PLAIN, grouped)
        x = self.embedding(ids, local, patches, patch_positions, replace=replace)
        return x, layout

    def _embed_frames(
        self,
        layout: GroupLayout,
        input_ids: torch.Tensor,
        patches: torch.Tensor,
        patch_positions: torch.Tensor | None,
        grouped: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Frame groups' vectors into `grouped` (B, L', D) -> (grouped, the patches and patch
        positions left to the patch embedding: those of images that are not frames)."""
        is_patch = input_ids == PATCH_ID  # (B, L)
        # Each placeholder's patch: patches travel in placeholder order, row-major.
        rank = (is_patch.flatten().cumsum(0) - 1).view_as(input_ids)
        in_frame = layout.kind == FRAME_GROUP
        if not bool(in_frame.any()):
            return grouped, patches, patch_positions
        keep = is_patch & ~in_frame
        b, compact = layout.real.shape
        slots = self.config.frame_group**2
        which = torch.full((b, compact, slots), -1, dtype=torch.long, device=input_ids.device)
        rows = torch.arange(b, device=input_ids.device)[:, None].expand_as(input_ids)
        which[rows[in_frame], layout.index[in_frame], layout.offset[in_frame]] = rank[in_frame]
        at_frame = layout.compact_kind == FRAME_GROUP  # (B, L')
        frames = self.frames(patches[which[at_frame]])  # (M, D)
        grouped = grouped.masked_scatter(at_frame.unsqueeze(-1), frames.to(grouped.dtype))
        kept = rank[keep]
        # Positions are only needed where patches remain (the embedding says so when missing).
        positions = None if patch_positions is None else patch_positions[kept]
        return grouped, patches[kept], positions

    def _grouped_loss(
        self,
        hidden: torch.Tensor,
        embedded: torch.Tensor,
        layout: GroupLayout,
        labels: torch.Tensor,
        loss_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`_masked_loss` over a compacted batch: each target token of the (B, L) inputs is
        predicted from the compact position before its own; a grouped action token by
        `action_head`'s slot for it (its class: `ActionGroupHead.classes`), every other token
        by the vocabulary head as usual.
        The same targets count as without grouping; hidden and embedded (the blocks' input) are
        (B, L', D)."""
        source = layout.index - 1  # (B, L)
        b = hidden.shape[0]
        usable = layout.real.gather(1, source.clamp(min=0)) & (source >= 0)
        targets = loss_mask.bool() & (layout.index >= 0) & usable  # (B, L)
        rows = torch.arange(b, device=hidden.device)[:, None].expand_as(labels)
        grouped = targets & (layout.kind == ACTION_GROUP)
        plain = targets & ~grouped
        per_target = torch.zeros(labels.shape, device=hidden.device)  # (B, L)
        total = hidden.new_zeros((), dtype=torch.float32)
        if bool(plain.any()):
            part, losses = self._head_cross_entropy(
                hidden[rows[plain], source[plain]], labels[plain]
            )
            total = total + part
            per_target[plain] = losses.float()
        if bool(grouped.any()):
            # One head call per group (its first token), then each token's slot.
            firsts = grouped & (layout.offset == 0)
            at = (rows[firsts], source[firsts])
            logits = self.action_head(hidden[at], embedded[at])  # (M, K, bins)
            group_of = firsts.flatten().long().cumsum(0).view_as(labels) - 1  # (B, L)
            picked = logits[group_of[grouped], layout.offset[grouped]]  # (N, bins)
            losses = F.cross_entropy(
                picked.float(), self.action_head.classes(labels[grouped]), reduction="none"
            )
            total = total + losses.sum()
            per_target[grouped] = losses
        count = targets.sum()
        return (
            total / count.clamp(min=1),
            count,
            per_target.sum(dim=1),
            targets.sum(dim=1),
        )

    def _masked_loss(
        self,
        hidden: torch.Tensor,
        input_ids: torch.Tensor,
        loss_mask: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over targets t with loss_mask[t], predicted from hidden[t - 1].

        Returns the mean, the number of targets, and each row's summed loss and target count.

        Only the selected hidden states go through the head: (N, D) @ (D, V), never (B, L, V).
        """
        targets = loss_mask[:, 1:].bool()  # (B, L-1): target t+1 predicted at t
        if attention_mask is not None:
            # With a cache the mask also covers the cached tokens: keep the new ones, after the
            # first.
            start = attention_mask.shape[1] - loss_mask.shape[1] + 1
            targets = targets & attention_mask[:, start:].bool()
        sources = hidden[:, :-1][targets]  # (N, D)
        labels = input_ids[:, 1:][targets]  # (N,)
        count = targets.sum()
        total, per_target = self._head_cross_entropy(sources, labels)
        row_counts = targets.sum(dim=1)  # (B,)
        rows = torch.repeat_interleave(
            torch.arange(len(row_counts), device=hidden.device), row_counts
        )
        row_sums = torch.zeros(len(row_counts), device=hidden.device).index_add_(
            0, rows, per_target
        )
        # Sum / count rather than mean: a batch without targets gives 0 (with a graph), not NaN.
        return total / count.clamp(min=1), count, row_sums, row_counts

    def output_weight(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """(hi - lo, D): the output head's rows for ids [lo, hi) (default: every id). With
        `value_head="embedding"` the continuous bins' rows are their input embeddings
        (`ValueEmbedding.embed`), computed here, so a caller that keeps the result must call
        again after the weights change; otherwise a view of `lm_head.weight`."""
        weight = self.lm_head.weight
        hi = weight.shape[0] if hi is None else hi
        if self.config.value_head == "table":
            return weight[lo:hi]
        first, last = max(lo, CONTINUOUS_OFFSET), min(hi, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)
        if first >= last:
            return weight[lo:hi]
        ids = torch.arange(first, last, device=weight.device)[None]  # (1, n)
        values = self.embedding.values.embed(weight[first:last][None], ids)[0]  # (n, D)
        return torch.cat([weight[lo:first], values, weight[last:hi]])

    def head_weight(self) -> torch.Tensor:
        """(R, D): the output head's rows of the ids the model can write, in id order: every id
        but the text ids at or above `config.text_vocab_size` (no text piece has them). The
        same rows as `output_weight()` when the text model fills the whole text range."""
        skipped = TEXT_VOCAB_SIZE - self.config.text_vocab_size
        if not skipped:
            return self.output_weight()
        return torch.cat(
            [
                self.output_weight(0, self.config.text_vocab_size),
                self.output_weight(TEXT_VOCAB_SIZE),
            ]
        )

    def head_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Ids -> rows of `head_weight()`, same shape: the ids above the text range move down
        past the skipped text ids."""
        skipped = TEXT_VOCAB_SIZE - self.config.text_vocab_size
        return labels - skipped * (labels >= TEXT_VOCAB_SIZE) if skipped else labels

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., V) logits over every id; a skipped text id's is -inf (probability
        0), and only the head's rows are multiplied, each range straight into its columns (no
        copy of the head's rows per decoded token)."""
        n = self.config.text_vocab_size
        if n == TEXT_VOCAB_SIZE:
            return hidden @ self.output_weight().T
        text = hidden @ self.output_weight(0, n).T  # (..., n)
        logits = text.new_full((*text.shape[:-1], self.config.vocab_size), float("-inf"))
        logits[..., :n] = text
        logits[..., TEXT_VOCAB_SIZE:] = hidden @ self.output_weight(TEXT_VOCAB_SIZE).T
        return logits

    def _head_cross_entropy(
        self, sources: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed and per-target cross-entropy of the head's logits at `sources` (N, D) against
        `labels` (N,), by `config.value_loss`: over the whole vocabulary, or ("range") a value
        target over its modality's 1,024 ids only, the ids a policy decodes an action from."""
        if self.config.value_loss == "vocabulary":
            return linear_cross_entropy(
                sources, self.head_weight(), self.head_labels(labels), return_per_target=True
            )
        per_target = torch.zeros(labels.shape[0], device=labels.device)
        total = sources.new_zeros((), dtype=torch.float32)
        in_range = torch.zeros_like(labels, dtype=torch.bool)
        for lo, size in (
            (CONTINUOUS_OFFSET, NUM_CONTINUOUS_BINS),
            (DISCRETE_OFFSET, NUM_DISCRETE_VALUES),
        ):
            picked = (labels >= lo) & (labels < lo + size)  # (N,)
            in_range |= picked
            if not bool(picked.any()):
                continue
            # The rows of the range only: a slice of the tied table, so the gradient reaches it.
            part, part_losses = linear_cross_entropy(
                sources[picked], self.output_weight(lo, lo + size), labels[picked] - lo,
                return_per_target=True,
            )  # fmt: skip
            total = total + part
            per_target[picked] = part_losses
        rest = ~in_range
        if bool(rest.any()):
            part, part_losses = linear_cross_entropy(
                sources[rest], self.head_weight(), self.head_labels(labels[rest]),
                return_per_target=True,
            )  # fmt: skip
            total = total + part
            per_target[rest] = part_losses
        return total, per_target

    def _validate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        local_positions: torch.Tensor | None,
        loss_mask: torch.Tensor | None,
        patches: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        past_length: int,
        labels: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> None:
        """Raise `ValueError` naming the problem: `validate_batch` plus model-specific checks."""
        cfg = self.config
        validate_batch(
            vocab_size=cfg.vocab_size,
            input_ids=input_ids,
            attention_mask=attention_mask if past_length == 0 else None,
            local_positions=local_positions,
            loss_mask=loss_mask,
            patches=patches,
            patch_positions=patch_positions,
            labels=labels,
            segment_ids=segment_ids,
        )
        for name, ids in (("input_ids", input_ids), ("labels", labels)):
            if ids is None or cfg.text_vocab_size == TEXT_VOCAB_SIZE:
                continue
            skipped = (ids >= cfg.text_vocab_size) & (ids < TEXT_VOCAB_SIZE)
            if bool(skipped.any()):
                raise ValueError(
                    f"{name} holds text id {int(ids[skipped][0])}, beyond the model's "
                    f"{cfg.text_vocab_size} text pieces (GatoConfig.text_vocab_size): text "
                    "tokenized with a larger text model than the one this model was trained with"
                )
        b, length = input_ids.shape
        if segment_ids is not None and past_length:
            raise ValueError(
                "segment_ids cannot be used with a cache: a decoding context is one sequence"
            )
        if length == 0:
            raise ValueError("input_ids must hold at least one token, got shape (B, 0)")
        if length > cfg.max_position_embeddings and not cfg.grouped:
            raise ValueError(
                f"input_ids has {length} tokens, more than the context "
                f"max_position_embeddings={cfg.max_position_embeddings}"
            )
        if past_length and attention_mask is not None:
            expected = (b, past_length + length)
            if tuple(attention_mask.shape) != expected:
                raise ValueError(
                    f"with a cache of {past_length} tokens, attention_mask must cover the cached "
                    f"and the new tokens: shape {expected}, got {tuple(attention_mask.shape)}"
                )
        if position_ids is not None and tuple(position_ids.shape) != (b, length):
            raise ValueError(
                f"position_ids must have the shape of input_ids {(b, length)}, "
                f"got {tuple(position_ids.shape)}"
            )
        if local_positions is not None and local_positions.numel():
            lo, hi = int(local_positions.min()), int(local_positions.max())
            if lo < -1 or hi >= cfg.max_local_positions:
                raise ValueError(
                    f"local_positions must lie in [-1, {cfg.max_local_positions}) "
                    f"(max_local_positions={cfg.max_local_positions}), found values in "
                    f"[{lo}, {hi}]: too many observation tokens in one timestep?"
                )
        if loss_mask is not None and bool((loss_mask.bool() & (input_ids == PATCH_ID)).any()):
            raise ValueError("loss_mask marks patch placeholders (PATCH_ID) as targets")
        if patches is not None and patches.shape[0]:
            expected_patch = (cfg.image_channels, cfg.patch_size, cfg.patch_size)
            if tuple(patches.shape[1:]) != expected_patch:
                raise ValueError(
                    f"patches must be (N, {cfg.image_channels}, {cfg.patch_size}, "
                    f"{cfg.patch_size}) (image_channels={cfg.image_channels}, "
                    f"patch_size={cfg.patch_size}), got shape {tuple(patches.shape)}"
                )
            if patches.dtype != torch.uint8:
                raise ValueError(
                    f"patches must be uint8 pixels (the model normalises them), got {patches.dtype}"
                )
            lo, hi = int(patch_positions.min()), int(patch_positions.max())
            if lo < 0 or hi > cfg.num_position_bins:
                raise ValueError(
                    f"patch_positions must lie in [0, {cfg.num_position_bins}] "
                    f"(num_position_bins), found values in [{lo}, {hi}]"
                )


AutoConfig.register(GatoConfig.model_type, GatoConfig, exist_ok=True)
AutoModel.register(GatoConfig, GatoModel, exist_ok=True)
# A causal LM over one vocabulary with a loss on next tokens: AutoModelForCausalLM fits too
# (generation goes through gato.policy, since images need patches beside the ids).
AutoModelForCausalLM.register(GatoConfig, GatoModel, exist_ok=True)
