"""`GatoConfig`: the model's shape, as a `transformers` config, and the named presets.

Presets follow the Gato paper's appendix (layers, heads, width, feed-forward size, key/value
size); see `GatoConfig.from_preset`. Parameter counts (the 34,112 x width token table shared with
the output head, a two-matrix GELU MLP, the patch block and the position tables included):

| preset | layers | heads | width | FF    | head dim | parameters | vs name |
| ------ | ------ | ----- | ----- | ----- | -------- | ---------- | ------- |
| tiny   | 4      | 4     | 128   | 512   | 32       | 5.34M      |         |
| 79m    | 8      | 24    | 768   | 3072  | 32       | 84.3M      | +6.7%   |
| 364m   | 12     | 12    | 1536  | 6144  | 128      | 395.0M     | +8.5%   |
| 1.18b  | 24     | 16    | 2048  | 8192  | 128      | 1.282B     | +8.6%   |

A SwiGLU MLP at the stated FF size, or an untied head, would push the paper sizes past 10%.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers.configuration_utils import PreTrainedConfig

from gato.tokens.statistics import ObservationStatistics
from gato.vocab import BOS_ID, EOS_ID, PAD_ID, PADDED_VOCAB_SIZE, TEXT_VOCAB_SIZE, VOCAB_SIZE

VALUE_EMBEDDING_INITS = ("normal", "smooth")
"""The choices of `GatoConfig.value_embedding_init`."""

PATCH_ENCODERS = ("resnet", "linear", "resnet+linear", "mono_resnet+linear", "nature")
"""How an image patch becomes a vector (`GatoConfig.patch_encoder`)."""

VALUE_FUNCTIONS = ("fourier", "fourier_mlp", "linear")
"""The learned functions of a value (`gato.modeling.embedding.ValueEmbedding`)."""

VALUE_EMBEDDINGS = ("table", *(f"table+{f}" for f in VALUE_FUNCTIONS), *VALUE_FUNCTIONS)
"""The choices of `GatoConfig.value_embedding`: the id's row, the row plus a function of the
value, or the function alone."""

VALUE_LOSSES = ("vocabulary", "range")
"""The choices of `GatoConfig.value_loss`."""

VALUE_HEADS = ("table", "embedding")
"""The choices of `GatoConfig.value_head`."""

GROUP_VALUE_FEATURES = (
    "fourier",
    "symlog",
    "symlog_mlp",
    "lowfreq",
    "lowfreq_mlp",
    "lowfreq+fourier",
)
"""What a group's linear map sees of each value (`GatoConfig.group_value_features`,
`gato.modeling.groups.GroupEmbedding`)."""

NATURE_MIN_SIDE = 36
"""The smallest square input the Nature DQN's three convolutions take (8/4, 4/2, 3/1)."""


def check_frame_group(
    frame_group: Any, patch_size: int, prefix: str = "", differences: Any = False
) -> None:
    """Raise `ValueError` unless `frame_group` is a non-negative integer whose frames
    (`frame_group` x `patch_size` pixels) the Nature DQN's convolutions can read, and
    `differences` (`frame_differences`) a bool asked for only with a frame group. `prefix`
    names the fields' owner in the message ("GatoConfig.")."""
    if not isinstance(frame_group, int) or isinstance(frame_group, bool) or frame_group < 0:
        raise ValueError(
            f"{prefix}frame_group must be a non-negative integer, got {frame_group!r} (0: "
            "control images as patches)"
        )
    side = frame_group * patch_size
    if frame_group and side < NATURE_MIN_SIDE:
        raise ValueError(
            f"{prefix}frame_group {frame_group} with patch_size {patch_size} makes frames of "
            f"{side} pixels; the Nature DQN's convolutions need {NATURE_MIN_SIDE} or more (5 "
            "with 16-pixel patches: an 84x84 Atari frame, resized to 80x80)"
        )
    if not isinstance(differences, bool):
        raise ValueError(f"{prefix}frame_differences must be a bool, got {differences!r}")
    if differences and not frame_group:
        raise ValueError(
            f"{prefix}frame_differences needs frame_group > 0 (--frame_group): only a frame "
            "group's encoder reads them"
        )


LEGACY_VALUE_EMBEDDING = "table"
"""What a saved config without a `value_embedding` field used (every checkpoint before it)."""

LEGACY_FIELDS = {"value_fourier_top": 64, "value_loss": "vocabulary", "value_head": "table"}
"""What a saved config without these fields used, whatever today's defaults."""

__all__ = [
    "ENCODINGS",
    "NATURE_MIN_SIDE",
    "PATCH_ENCODERS",
    "PRESETS",
    "VALUE_EMBEDDINGS",
    "GatoConfig",
    "check_frame_group",
]

_GROUPED: dict[str, Any] = dict(
    continuous_observation_group=32,
    continuous_action_group=8,
    action_group_bins=256,
    keep_separator=False,
    value_fourier_top=8,
)

ENCODINGS: dict[str, dict[str, Any]] = {
    # Gato's: one token per continuous value, the separator, actions token by token.
    "values": dict(continuous_observation_group=0, continuous_action_group=0),
    # Whole observations (up to 32 values a position) and actions (8 dimensions a forward pass,
    # 256 classes each), no separator position, smoother value features (`top=8` with 16
    # frequencies: the multiples 1, 2, ..., 16 of pi, where the default reaches 64 pi): on
    # gym-pendulum's behaviour clone it reached 92% of expert at 1,500 steps where one token per
    # value reached 56%, and a MuJoCo-like training step runs ~10x the timesteps/s
    # (docs/control_learning.md, benchmarks/grouped_encoding.py).
    "grouped": _GROUPED,
    # The grouped encoding over standardised observations: each task's continuous observations
    # tokenized as (x - mean) / std of its training episodes (recorded in the checkpoint), each
    # value read as [z, sin(2 pi z / 8), cos(2 pi z / 8)] through a two-layer ReLU encoder (the
    # MLP specialist's shape): with the blocks at a tenth of the learning rate
    # (`TrainConfig.block_lr_scale`) it clones the swing-up where Fourier features stall at
    # ~25%, and pendulum (docs/control_learning.md).
    "grouped_z": dict(_GROUPED, group_value_features="lowfreq_mlp", standardize_observations=True),
}
"""Named encodings of continuous values: `GatoConfig` fields, applied over a preset."""


PRESETS: dict[str, dict[str, Any]] = {
    # Width 128: the token table alone is 34,112 x width (4.4M at 128, 8.7M at 256), so a wider
    # tiny model is mostly embedding (and its head the main cost of a step); 4 x 128 keeps the
    # model at ~5M parameters and a CPU training step at context 1024, batch 4, near 1-2 s, which
    # suits tests and CPU demos.
    "tiny": dict(
        num_hidden_layers=4,
        num_attention_heads=4,
        hidden_size=128,
        intermediate_size=512,
        head_dim=32,
        resnet_channels=32,
        resnet_groups=8,
    ),
    "79m": dict(
        num_hidden_layers=8,
        num_attention_heads=24,
        hidden_size=768,
        intermediate_size=3072,
        head_dim=32,
    ),
    "364m": dict(
        num_hidden_layers=12,
        num_attention_heads=12,
        hidden_size=1536,
        intermediate_size=6144,
        head_dim=128,
    ),
    "1.18b": dict(
        num_hidden_layers=24,
        num_attention_heads=16,
        hidden_size=2048,
        intermediate_size=8192,
        head_dim=128,
    ),
}
"""Named model shapes: `GatoConfig.from_preset(name, **overrides)`."""


def check_statistics_record(record: Any) -> dict[str, ObservationStatistics]:
    """`GatoConfig.observation_statistics` -> {task id: statistics}; a bad record is refused,
    naming the task."""
    if not isinstance(record, dict):
        raise ValueError(
            "GatoConfig.observation_statistics must be {task id: {'mean': [...], 'std': [...]}}, "
            f"got {type(record).__name__}"
        )
    out = {}
    for task, stats in record.items():
        try:
            out[task] = ObservationStatistics.from_dict(stats)
        except ValueError as err:
            raise ValueError(f"GatoConfig.observation_statistics[{task!r}]: {err}") from None
    return out


class GatoConfig(PreTrainedConfig):
    """Shape and hyper-parameters of `gato.modeling.model.GatoModel` (defaults: the 79M model)."""

    model_type: ClassVar[str] = "gato"

    # -- vocabulary ------------------------------------------------------------------------------
    vocab_size: int = PADDED_VOCAB_SIZE
    """Rows of the token embedding (and columns of the output head): the padded id table of
    `gato.vocab`. Must cover every meaningful id (`gato.vocab.VOCAB_SIZE`)."""
    text_vocab_size: int = TEXT_VOCAB_SIZE
    """Text ids the model reads and writes: [0, text_vocab_size) of the text range, the pieces of
    its SentencePiece model (the trainer sets it from the model's piece count). The head computes
    no logit for the text ids above (their probability is 0), so a text model smaller than the
    range makes every target cheaper (at width 128 the head over 34,112 ids was 37% of the CPU
    demo's step). Their embedding rows stay, so ids keep one meaning whatever the text model."""
    pad_token_id: int | None = PAD_ID
    """Padding id (inside the vocabulary, as transformers 5 requires)."""
    bos_token_id: int | None = BOS_ID
    """Beginning of a text sequence."""
    eos_token_id: int | None = EOS_ID
    """End of a text / an episode."""
    tie_word_embeddings: bool = True
    """Share the token embedding with the output head. The preset sizes assume it."""

    # -- transformer -----------------------------------------------------------------------------
    hidden_size: int = 768
    """Model width (the residual stream)."""
    num_hidden_layers: int = 8
    """Decoder blocks."""
    num_attention_heads: int = 24
    """Attention heads per block."""
    head_dim: int = 32
    """Gato's "key/value size": width of one head. Heads x head_dim need not equal the width."""
    intermediate_size: int = 3072
    """Hidden size of the two-matrix GELU MLP ("FF hidden" in the paper)."""
    max_position_embeddings: int = 1024
    """Context length: the most tokens one forward call may take (a cache may hold more)."""
    rope_theta: float = 10000.0
    """Base of the rotary position frequencies (global order of tokens)."""
    layer_norm_eps: float = 1e-5
    """Epsilon of the pre-norm LayerNorms."""
    dropout: float = 0.0
    """Dropout on embeddings and on each block's residual branches (training only)."""
    attention_dropout: float = 0.0
    """Dropout on attention probabilities (training only)."""
    initializer_range: float = 0.02
    """Standard deviation of the normal initialisation of weights."""
    value_embedding_init: str = "normal"
    """Initial rows of the continuous-value bins in the token table (and so, tied, in the output
    head): "normal" (independent, as every other id) or "smooth" (`ordinal_embedding`: nearby
    bins start with similar rows, so what is learnt for one value carries to its neighbours)."""
    value_embedding: str = "fourier"
    """How a continuous-value token is embedded: "table" (its id's row only, as Gato), or the
    id's row plus a learned function of the value its bin stands for, so that what is learnt for
    one value carries to its neighbours: "table+fourier" (a linear map of Fourier features of the
    bin centre in [-1, 1]), "table+fourier_mlp" (the features through a two-layer GELU MLP) or
    "table+linear" (W v + b); or the function alone, without the id's row: "fourier",
    "fourier_mlp", "linear". The output head stays the tied table either way. Default "fourier":
    on gym-pendulum's behaviour clone it learns ~3-4x faster than the table (56% against 20% of
    expert at 1,500 steps, 2 seeds; docs/control_learning.md); a row per bin lets the model
    memorise each bin's examples instead of sharing them."""
    value_fourier_features: int = 16
    """Frequencies of the value function's Fourier features (sin and cos of each, plus the
    value itself), about geometric from pi to `value_fourier_top` pi
    (`gato.modeling.embedding.fourier_multiples`)."""
    value_fourier_top: int = 64
    """The highest Fourier frequency in multiples of pi: a period of 2 / top in v, 1024 / top
    bins. Lower: smoother features, values share more with their neighbours."""
    value_loss: str = "range"
    """Over which ids a value target's softmax runs in the loss: "vocabulary" (all ids, as
    Gato) or "range" (a continuous target over the 1,024 continuous bins, a discrete one over
    the 1,024 discrete values: the ids an action decodes from, since the policy masks its logits
    to the action's range). Text and other targets keep the whole vocabulary either way. "range"
    also skips ~97% of the head's work for value targets. Default "range": it learns as well
    (docs/control_learning.md) and a width-64 control training step runs 2.6x faster."""
    value_head: str = "table"
    """The output head's rows for the continuous bins: "table" (the tied token table's rows) or
    "embedding" (each bin's whole input embedding, the row plus the value function, so that
    neighbouring bins' logits share what is learnt; needs a value function in
    `value_embedding`). `GatoModel.output_weight` is the head either way."""
    continuous_observation_group: int = 0
    """0: every continuous observation value is its own token (Gato). K > 0: each timestep's
    continuous observation values enter the transformer K at a time, one position per chunk,
    embedded by a learned linear map of the chunk's values (`gato.modeling.groups`). The
    tokenizer's sequence is the same either way; the model compacts it."""
    continuous_action_group: int = 0
    """0: a continuous action is decoded one token per dimension (Gato). K > 0: K dimensions
    at a time, all predicted from one position (`ActionGroupHead`: K softmaxes over the 1,024
    bins), and fed back as one position."""
    action_group_bins: int = 1024
    """With grouped actions: classes per action dimension in `ActionGroupHead` (a divisor of
    1,024; coarser classes each span 1024 / bins of the tokens' bins)."""
    group_value_features: str = "fourier"
    """With grouped values: what a group's linear map sees of each value
    (`gato.modeling.groups.GroupEmbedding`): "fourier" (Fourier features of its bin centre, the
    mu-law code of an observation); "symlog" (sign(x) log(1 + |x|) of the value in the
    environment's units) or "symlog_mlp" (the same through a GELU hidden layer), benchmark
    options measured worse; "lowfreq" ([x, sin(2 pi x / P), cos(2 pi x / P)] of the value x,
    P = `group_value_period`, meant for observations the tokenizer standardised,
    `standardize_observations`), "lowfreq_mlp" (the same, an observation group's through two
    ReLU layers, `groups.value_encoder`) or "lowfreq+fourier" (both readings side by side);
    docs/control_learning.md."""
    action_head_skip: bool = False
    """With grouped actions: `ActionGroupHead` reads the final hidden state plus a learned map of
    the predicting position's input embedding (an observation group's encoding, with
    `keep_separator=False`), so a control clone has a path around the blocks that the other
    tasks keep moving (docs/control_learning.md). False (every checkpoint before the field): the
    final hidden state alone."""
    group_encoder_hidden: int = 256
    """Hidden units of each layer of the "lowfreq_mlp" observation encoder."""
    group_value_period: float = 8.0
    """The period of "lowfreq" group features, in the value's units (deviations, standardised)."""
    standardize_observations: bool = False
    """Training tokenizes each control task's continuous observations standardised by the
    statistics of its training episodes (`gato.tokens.statistics`), and records them in
    `observation_statistics`. False (every checkpoint before the field): values as they come."""
    observation_statistics: dict[str, dict[str, list[float]]] | None = None
    """{task id: {"mean": [...], "std": [...]}}: the training episodes' per-dimension statistics
    of each task's continuous observations, which the tokenizer standardised them by
    (`gato.tokens.statistics`); acting on a task tokenizes its observations the same way. None
    (every checkpoint before the field): values as they come."""
    frame_group: int = 0
    """0: an image of a control observation enters as its patches, one position each (Gato).
    G > 0: each control observation image of G x G patches (a frame the tokenizer cut at
    `patch_size`: G = 5 for an 84x84 Atari stack, resized to 80x80) enters the transformer as
    one position, embedded by the Nature DQN's convolutions on the frame put back together
    (`gato.modeling.frames`). Images that are not followed by a separator (captions, VQA) keep
    their patch tokens, so one model reads a control frame whole and a picture cell by cell.
    Why: on Pong a transformer reading 25 patch tokens stays at the entropy of the action
    frequencies where one frame token learns close behind the CNN specialist
    (docs/control_learning.md). The tokenizer's sequence is the same either way."""
    frame_differences: bool = False
    """With `frame_group`: the frame encoder also reads the differences between consecutive
    frames of the stack (C - 1 more channels), so what moved (Pong's ball) stands out from the
    still background the first convolution would otherwise have to learn to subtract. On Pong
    it lowers the training loss by 7-10% and the play not beyond the seeds' spread
    (docs/control_learning.md, "What moved"), so it is off by default. False (every checkpoint
    before the field): the stack alone."""
    keep_separator: bool = True
    """With grouped values only: whether the separator takes a position. False: an action
    follows its observation directly and is predicted from the observation's last position,
    as in JAT (a MuJoCo-like timestep is then 2 positions instead of 3)."""
    policy_history_steps: int | None = None
    """Past timesteps the policy keeps after its prompt (`PolicyConfig.history_steps`), set by
    training on short control windows (`TrainConfig.control_window_steps` - 1); None: as many
    as the context holds."""
    hide_context_actions: bool = False
    """The model learnt with every context action hidden (`TrainConfig.action_dropout=1`): it
    has never seen an action id in its input, so its policy feeds them hidden too
    (`PolicyConfig.hide_actions`)."""
    use_cache: bool = True
    """Whether forward returns a KV cache by default in eval mode."""

    # -- feed-forward blocks ---------------------------------------------------------------------
    ffn: str = "dense"
    """Every block's feed-forward part: "dense" (the two-matrix GELU MLP) or "pathnet" (M small
    GELU MLP modules of which the active pathway sums N; `gato.modeling.ffn`)."""
    pathnet_modules: int = 8
    """PathNet FFN: modules per block (M)."""
    pathnet_active: int = 4
    """PathNet FFN: modules a pathway uses per block (N, at most M)."""
    pathnet_module_size: int | None = None
    """PathNet FFN: hidden units per module; None: intermediate_size / pathnet_active, so one
    pathway has the dense MLP's shape."""

    # -- observations ----------------------------------------------------------------------------
    max_local_positions: int = 512
    """Size of the local (within-observation) position table; local positions must be below it."""
    patch_size: int = 16
    """Side of the square image patches."""
    image_channels: int = 4
    """Channels of every patch (RGB is zero-padded to 4 by the tokenizer)."""
    num_position_bins: int = 128
    """Quantisation of a patch's normalised row and column interval."""
    resnet_channels: int = 64
    """Channels of the patch embedding's ResNet v2 block."""
    resnet_groups: int = 32
    """GroupNorm groups in the patch block (32 in a reimplementation of Gato)."""
    patch_encoder: str = "resnet"
    """How a patch becomes a vector: "resnet" (Gato's ResNet v2 block), "linear" (ViT's
    projection of the flattened pixels: linear in each pixel, so a patch whose colour and shape
    were never seen together is embedded as a combination of patches that were) or
    "resnet+linear" (the sum of both) or "mono_resnet+linear" (the sum, the ResNet reading a
    colour-blind silhouette of the patch, so that colour enters by the linear path alone).
    docs/captions.md compares them. "nature": the Nature DQN's convolutions on standardised
    pixels, for a patch that is a whole frame (`patch_size` 36 or more; 84 makes each Atari
    frame stack one token), compared on Pong in docs/control_learning.md."""

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.check()

    @property
    def grouped(self) -> bool:
        """Whether continuous values or control frames enter in groups (`gato.modeling.groups`):
        the model compacts the tokenizer's sequence."""
        return bool(
            self.continuous_observation_group or self.continuous_action_group or self.frame_group
        )

    def check(self) -> None:
        """Raise `ValueError` naming the first inconsistent field (run at construction)."""
        positive = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "head_dim",
            "intermediate_size",
            "max_position_embeddings",
            "max_local_positions",
            "patch_size",
            "image_channels",
            "num_position_bins",
            "resnet_channels",
            "resnet_groups",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GatoConfig.{name} must be a positive integer, got {value!r}")
        if self.vocab_size < VOCAB_SIZE:
            raise ValueError(
                f"GatoConfig.vocab_size={self.vocab_size} is smaller than the {VOCAB_SIZE} ids "
                "of gato.vocab"
            )
        text = self.text_vocab_size
        if not isinstance(text, int) or isinstance(text, bool) or not 1 <= text <= TEXT_VOCAB_SIZE:
            raise ValueError(
                f"GatoConfig.text_vocab_size must be an integer in [1, {TEXT_VOCAB_SIZE}] (the "
                f"text range of gato.vocab), got {text!r}"
            )
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"GatoConfig.{name}={value} must lie inside the vocabulary "
                    f"[0, {self.vocab_size})"
                )
        if self.head_dim % 2:
            raise ValueError(
                f"GatoConfig.head_dim={self.head_dim} must be even (rotary embeddings rotate pairs)"
            )
        if self.patch_size % 4:
            raise ValueError(
                f"GatoConfig.patch_size={self.patch_size} must be a multiple of 4 (the patch "
                "block halves the patch twice)"
            )
        if self.resnet_channels % self.resnet_groups:
            raise ValueError(
                f"GatoConfig.resnet_channels={self.resnet_channels} must be divisible by "
                f"resnet_groups={self.resnet_groups}"
            )
        if self.ffn not in ("dense", "pathnet"):
            raise ValueError(f"GatoConfig.ffn must be 'dense' or 'pathnet', got {self.ffn!r}")
        if self.ffn == "pathnet":
            for name in ("pathnet_modules", "pathnet_active"):
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ValueError(f"GatoConfig.{name} must be a positive integer, got {value!r}")
            if self.pathnet_active > self.pathnet_modules:
                raise ValueError(
                    f"GatoConfig.pathnet_active={self.pathnet_active} exceeds pathnet_modules="
                    f"{self.pathnet_modules}: a pathway uses at most N of the M modules"
                )
            size = self.pathnet_module_size
            if size is None and self.intermediate_size % self.pathnet_active:
                raise ValueError(
                    f"GatoConfig.intermediate_size={self.intermediate_size} is not divisible by "
                    f"pathnet_active={self.pathnet_active}; set pathnet_module_size"
                )
            if size is not None and (
                not isinstance(size, int) or isinstance(size, bool) or size < 1
            ):
                raise ValueError(
                    f"GatoConfig.pathnet_module_size must be a positive integer or None, "
                    f"got {size!r}"
                )
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"GatoConfig.{name} must lie in [0, 1), got {value}")
        if self.value_embedding_init not in VALUE_EMBEDDING_INITS:
            raise ValueError(
                "GatoConfig.value_embedding_init must be 'normal' or 'smooth', got "
                f"{self.value_embedding_init!r}"
            )
        if self.patch_encoder not in PATCH_ENCODERS:
            raise ValueError(
                f"GatoConfig.patch_encoder must be one of {PATCH_ENCODERS}, got "
                f"{self.patch_encoder!r}"
            )
        if self.patch_encoder == "nature" and self.patch_size < NATURE_MIN_SIDE:
            raise ValueError(
                f"GatoConfig.patch_encoder='nature' needs patch_size >= 36 (its three "
                f"convolutions shrink a patch by 12x), got {self.patch_size}; 84 makes each "
                "84x84 frame one token"
            )
        if self.value_embedding not in VALUE_EMBEDDINGS:
            raise ValueError(
                f"GatoConfig.value_embedding must be one of {VALUE_EMBEDDINGS}, got "
                f"{self.value_embedding!r}"
            )
        for name in ("value_fourier_features", "value_fourier_top"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GatoConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.keep_separator, bool):
            raise ValueError(
                f"GatoConfig.keep_separator must be True or False, got {self.keep_separator!r}"
            )
        if self.group_value_features not in GROUP_VALUE_FEATURES:
            raise ValueError(
                f"GatoConfig.group_value_features must be one of {GROUP_VALUE_FEATURES}, got "
                f"{self.group_value_features!r}"
            )
        hidden = self.group_encoder_hidden
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(
                f"GatoConfig.group_encoder_hidden must be a positive integer, got {hidden!r}"
            )
        period = self.group_value_period
        if isinstance(period, bool) or not isinstance(period, int | float) or not period > 0:
            raise ValueError(f"GatoConfig.group_value_period must be positive, got {period!r}")
        if not isinstance(self.action_head_skip, bool):
            raise ValueError(
                f"GatoConfig.action_head_skip must be True or False, got {self.action_head_skip!r}"
            )
        if self.action_head_skip and not self.continuous_action_group:
            raise ValueError(
                "GatoConfig.action_head_skip needs grouped actions (continuous_action_group > 0): "
                "it is a path into their head"
            )
        if not isinstance(self.standardize_observations, bool):
            raise ValueError(
                "GatoConfig.standardize_observations must be True or False, got "
                f"{self.standardize_observations!r}"
            )
        if self.observation_statistics is not None:
            check_statistics_record(self.observation_statistics)
        bins = self.action_group_bins
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1 or 1024 % bins:
            raise ValueError(f"GatoConfig.action_group_bins must divide 1024, got {bins!r}")
        for name in ("continuous_observation_group", "continuous_action_group"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(
                    f"GatoConfig.{name} must be a non-negative integer (0: one token per "
                    f"value), got {value!r}"
                )
        check_frame_group(self.frame_group, self.patch_size, "GatoConfig.", self.frame_differences)
        if self.frame_differences and self.image_channels < 2:
            raise ValueError(
                f"GatoConfig.frame_differences needs stacks of 2 or more frames, got "
                f"image_channels={self.image_channels}"
            )
        if self.value_head not in VALUE_HEADS:
            raise ValueError(
                f"GatoConfig.value_head must be one of {VALUE_HEADS}, got {self.value_head!r}"
            )
        if self.value_head == "embedding" and self.value_embedding == "table":
            raise ValueError(
                "GatoConfig.value_head='embedding' needs a value function: set value_embedding "
                f"to one of {VALUE_EMBEDDINGS[1:]}"
            )
        if self.value_loss not in VALUE_LOSSES:
            raise ValueError(
                f"GatoConfig.value_loss must be one of {VALUE_LOSSES}, got {self.value_loss!r}"
            )
        if self.rope_theta <= 0 or self.layer_norm_eps <= 0 or self.initializer_range < 0:
            raise ValueError(
                "GatoConfig.rope_theta and layer_norm_eps must be positive and initializer_range "
                f"non-negative, got {self.rope_theta}, {self.layer_norm_eps}, "
                f"{self.initializer_range}"
            )

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> GatoConfig:
        """A saved config; one written before `value_embedding` (or `LEGACY_FIELDS`) existed
        keeps what it was trained with, whatever today's defaults."""
        legacy = {"value_embedding": LEGACY_VALUE_EMBEDDING, **LEGACY_FIELDS}
        missing = {k: v for k, v in legacy.items() if k not in config_dict}
        if missing:
            config_dict = {**config_dict, **missing}
        return super().from_dict(config_dict, **kwargs)

    def task_statistics(self, task: str) -> ObservationStatistics | None:
        """The observation statistics recorded for `task` (None: its values are tokenized as
        they come, as for every task of a model trained without statistics)."""
        if self.observation_statistics is None:
            return None
        record = self.observation_statistics.get(task)
        return None if record is None else ObservationStatistics.from_dict(record)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GatoConfig:
        """A named shape (`tiny`, `79m`, `364m`, `1.18b`), with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})
