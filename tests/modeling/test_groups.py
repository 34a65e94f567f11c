"""Grouped continuous values: the compaction against a token-by-token walk, the group embedding
and the grouped loss against references written from their definitions, save/load, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import make_config
from references import grouped_loss_reference, slow_groups

from gato.codecs import mu_law_decode
from gato.modeling.config import GatoConfig
from gato.modeling.embedding import fourier_multiples
from gato.modeling.groups import (
    compact_length,
    group_layout,
    low_frequency_features,
    symlog_value_features,
)
from gato.modeling.model import GatoModel
from gato.tokens.batch import collate, mask_actions
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import ACTION_MASK_ID, CONTINUOUS_OFFSET, NUM_CONTINUOUS_BINS, SEPARATOR_ID

GROUPS = [(4, 2), (32, 8), (3, 0), (0, 2)]
BINS = {(4, 2): 1024, (32, 8): 256, (3, 0): 1024, (0, 2): 64}
SEPARATOR = [True, False]


def mixed_batch(seed: int = 0):
    """Continuous observations of several keys and an image, continuous and discrete actions,
    text: every kind of token, ragged rows (right padding)."""
    tokenizer = GatoTokenizer()
    rng = np.random.default_rng(seed)
    continuous = tokenizer.encode_episode(
        {"continuous": {"a": rng.normal(size=(4, 5)), "b": rng.normal(size=(4, 3))}},
        {"continuous": rng.uniform(-1, 1, (4, 3))},
    )
    with_image = tokenizer.encode_episode(
        {
            "continuous": rng.normal(size=(2, 9)),
            "image": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        },
        {"continuous": rng.uniform(-1, 1, (2, 5))},
    )
    discrete = tokenizer.encode_episode(
        {"continuous": rng.normal(size=(3, 2)), "discrete": rng.integers(0, 9, (3, 2))},
        {"discrete": rng.integers(0, 6, (3,))},
    )
    text = tokenizer.encode_text_sequence("a red square above a blue circle")
    return collate([continuous, with_image, discrete, text])


def expected_group(model, batch, row: int, kind: int, members: list[int], slots: torch.Tensor):
    """A group's embedding from its slots' features: the kind's linear map, plus the first
    member's local position for an observation group."""
    module = model.groups.observations if kind == 1 else model.groups.actions
    expected = module.weight @ slots.flatten() + module.bias
    if kind == 1:
        local = batch.local_positions[row, members[0]]
        expected = expected + model.embedding.local_positions.weight[local]
    return expected


@pytest.mark.parametrize("keep_separator", SEPARATOR)
@pytest.mark.parametrize("right_align", [False, True])
@pytest.mark.parametrize(("ko", "ka"), GROUPS)
def test_layout_matches_a_token_by_token_walk(ko, ka, right_align, keep_separator):
    batch = mixed_batch()
    layout = group_layout(
        batch.input_ids, batch.local_positions, batch.attention_mask, ko, ka, right_align,
        keep_separator,
    )  # fmt: skip
    for r in range(batch.input_ids.shape[0]):
        real = batch.attention_mask[r].bool()
        ids, local = batch.input_ids[r][real], batch.local_positions[r][real]
        expected = slow_groups(ids.tolist(), local.tolist(), ko, ka, keep_separator)
        shift = layout.length - len(expected) if right_align else 0
        assert int(layout.real[r].sum()) == len(expected)
        assert compact_length(ids.numpy(), local.numpy(), ko, ka, keep_separator) == len(expected)
        for c, (kind, members) in enumerate(expected):
            assert int(layout.first[r, shift + c]) == members[0]
            assert int(layout.compact_kind[r, shift + c]) == kind
            for slot, t in enumerate(members):
                assert int(layout.index[r, t]) == shift + c
                assert int(layout.offset[r, t]) == slot
        assert bool((layout.index[r][~real] == -1).all())
        if not keep_separator:
            assert bool((layout.index[r][batch.input_ids[r] == SEPARATOR_ID] == -1).all())


def test_ungrouped_tokens_keep_their_embedding_and_groups_embed_their_values():
    torch.manual_seed(0)
    model = GatoModel(make_config(continuous_observation_group=4, continuous_action_group=2))
    model.eval()
    batch = mixed_batch()
    x, layout = model.embed(
        batch.input_ids, batch.local_positions, batch.patches, batch.patch_positions,
        batch.attention_mask,
    )  # fmt: skip
    plain = model.embedding(
        batch.input_ids, batch.local_positions, batch.patches, batch.patch_positions
    )
    r = 0  # the first row: continuous observations of two keys, continuous actions
    groups = slow_groups(batch.input_ids[r].tolist(), batch.local_positions[r].tolist(), 4, 2)
    for c, (kind, members) in enumerate(groups):
        ids = batch.input_ids[r, members]
        if kind == 0:
            torch.testing.assert_close(x[r, c], plain[r, members[0]])
            continue
        size = 4 if kind == 1 else 2
        # Each slot: [v, sin(n_k pi v), cos(n_k pi v)] of its bin centre v, then filled = 1;
        # empty slots all 0 (written from the formula, not the module's helper).
        n = model.config.value_fourier_features
        multiples = fourier_multiples(n, model.config.value_fourier_top)
        slots = torch.zeros(size, 2 * n + 2)
        for slot, token in enumerate(ids.tolist()):
            v = (2 * (token - CONTINUOUS_OFFSET) + 1) / 1024 - 1
            angles = [math.pi * m * v for m in multiples]
            row = [v] + [math.sin(a) for a in angles] + [math.cos(a) for a in angles] + [1.0]
            slots[slot] = torch.tensor(row)
        torch.testing.assert_close(x[r, c], expected_group(model, batch, r, kind, members, slots))


@pytest.mark.parametrize("keep_separator", SEPARATOR)
@pytest.mark.parametrize(
    ("ko", "ka", "skip"), [(*g, False) for g in GROUPS] + [(4, 2, True), (0, 2, True)]
)
def test_grouped_loss_matches_the_reference_and_counts_every_target(ko, ka, skip, keep_separator):
    torch.manual_seed(0)
    config = make_config(
        continuous_observation_group=ko,
        continuous_action_group=ka,
        keep_separator=keep_separator,
        action_group_bins=BINS[ko, ka],
        action_head_skip=skip,
    )
    model = GatoModel(config)
    model.eval()  # training draws patch positions at random: two forwards would differ
    batch = mixed_batch(1)
    out = model(**batch.as_dict())
    torch.testing.assert_close(out.loss, grouped_loss_reference(model, batch))
    # The same targets as one token per value (each real target after the first token).
    targets = batch.loss_mask[:, 1:].bool() & batch.attention_mask[:, 1:].bool()
    assert int(out.num_loss_tokens) == int(targets.sum())
    out.loss.backward()
    if ka:
        assert model.action_head.projection.weight.grad.abs().sum() > 0
    if ko:
        assert model.groups.observations.weight.grad.abs().sum() > 0
    if skip:
        assert model.action_head.skip.weight.grad.abs().sum() > 0


def test_a_skip_head_reads_the_input_embedding_and_refuses_to_go_without_it():
    torch.manual_seed(0)
    config = make_config(continuous_observation_group=4, continuous_action_group=2,
                         action_head_skip=True, keep_separator=False)  # fmt: skip
    model = GatoModel(config).eval()
    batch = mixed_batch(1)
    base = model(**batch.as_dict()).loss
    with torch.no_grad():
        model.action_head.skip.weight.mul_(3.0)
    # Only the skip changed, and the loss moved with it: the head reads the input embedding.
    assert not torch.allclose(model(**batch.as_dict()).loss, base)
    hidden = torch.zeros(2, config.hidden_size)
    with pytest.raises(ValueError, match="action_head_skip.*pass inputs"):
        model.action_head(hidden)
    assert model.action_head(hidden, hidden).shape == (2, 2, config.action_group_bins)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_the_skip_flag_must_be_a_bool_and_needs_grouped_actions(value):
    with pytest.raises(ValueError, match="action_head_skip must be True or False"):
        GatoConfig(continuous_action_group=2, action_head_skip=value)
    with pytest.raises(ValueError, match="action_head_skip needs grouped actions"):
        GatoConfig(continuous_observation_group=4, action_head_skip=True)


def test_hidden_actions_stay_targets_and_read_as_empty_slots():
    torch.manual_seed(0)
    model = GatoModel(make_config(continuous_observation_group=4, continuous_action_group=2))
    batch = mixed_batch()
    hidden = mask_actions(batch, 0.5, torch.Generator().manual_seed(0))
    assert bool((hidden.input_ids == ACTION_MASK_ID).any())
    out = model(**hidden.as_dict())
    assert int(out.num_loss_tokens) == int(model(**batch.as_dict()).num_loss_tokens)
    x, _ = model.embed(hidden.input_ids, hidden.local_positions, hidden.patches,
                       hidden.patch_positions, hidden.attention_mask, hidden.labels)  # fmt: skip
    y, _ = model.embed(batch.input_ids, batch.local_positions, batch.patches,
                       batch.patch_positions, batch.attention_mask)  # fmt: skip
    assert x.shape == y.shape and not torch.allclose(x, y)


def test_grouping_shortens_a_mujoco_like_timestep_to_three_positions():
    tokenizer = GatoTokenizer()
    rng = np.random.default_rng(0)
    seq = tokenizer.encode_episode(
        {"continuous": rng.normal(size=(10, 17))}, {"continuous": rng.uniform(-1, 1, (10, 6))}
    )
    assert len(seq) == 10 * 24
    assert compact_length(seq.ids, seq.local_positions, 32, 8) == 10 * 3
    assert compact_length(seq.ids, seq.local_positions, 0, 0) == 10 * 24
    assert compact_length(seq.ids, seq.local_positions, 32, 8, keep_separator=False) == 10 * 2


def check_groups_against_the_formula(features: str, slot_features, **fields) -> None:
    """Every group of a mixed row embeds as `expected_group` of its slots, a slot reading
    [*slot_features(x), 1] with x an observation's bin centre decoded from mu-law (numpy's
    `mu_law_decode`, the tokenizer's inverse) or an action's bin centre as it is."""
    torch.manual_seed(0)
    config = make_config(
        continuous_observation_group=4,
        continuous_action_group=2,
        group_value_features=features,
        **fields,
    )
    model = GatoModel(config).eval()
    batch = mixed_batch()
    x, _ = model.embed(
        batch.input_ids, batch.local_positions, batch.patches, batch.patch_positions,
        batch.attention_mask,
    )  # fmt: skip
    r = 0
    groups = slow_groups(batch.input_ids[r].tolist(), batch.local_positions[r].tolist(), 4, 2)
    checked = 0
    for c, (kind, members) in enumerate(groups):
        if kind == 0:
            continue
        size = 4 if kind == 1 else 2
        slots = torch.zeros(size, model.groups.per_slot)
        for slot, token in enumerate(batch.input_ids[r, members].tolist()):
            centre = (2 * (token - CONTINUOUS_OFFSET) + 1) / 1024 - 1
            value = float(mu_law_decode(centre)) if kind == 1 else centre
            slots[slot] = torch.tensor([*slot_features(value), 1.0])
        torch.testing.assert_close(x[r, c], expected_group(model, batch, r, kind, members, slots))
        checked += 1
    assert checked >= 2  # observation and action groups both seen


def test_symlog_groups_embed_each_value_in_its_own_units():
    """`group_value_features="symlog"`: a slot reads [symlog(x), 1]."""
    check_groups_against_the_formula("symlog", lambda x: [math.copysign(math.log1p(abs(x)), x)])


def test_symlog_features_recover_the_observed_values():
    """The embedding reads back (to a bin's precision) what the tokenizer was given."""
    tokenizer = GatoTokenizer()
    values = np.array([-200.0, -3.0, -0.5, 0.0, 0.01, 1.0, 7.5, 100.0])
    bins = torch.from_numpy(tokenizer.encode_continuous(values) - CONTINUOUS_OFFSET)
    features = symlog_value_features(bins, torch.ones_like(bins, dtype=torch.bool))[:, 0]
    recovered = torch.sign(features) * torch.expm1(features.abs())
    np.testing.assert_allclose(recovered.numpy(), values, rtol=0.03, atol=2e-4)


@pytest.mark.parametrize("value", ["raw", "", None])
def test_unknown_group_value_features_raise(value):
    with pytest.raises(ValueError, match="group_value_features"):
        GatoConfig(group_value_features=value)


@pytest.mark.parametrize("period", [8.0, 3.0])
def test_low_frequency_groups_embed_one_bend_of_each_value(period):
    """`group_value_features="lowfreq"`: a slot reads [x, sin(2 pi x / P), cos(2 pi x / P), 1]."""

    def bend(x: float) -> list[float]:
        angle = 2 * math.pi * x / period
        return [x, math.sin(angle), math.cos(angle)]

    check_groups_against_the_formula("lowfreq", bend, group_value_period=period)


def test_low_frequency_features_read_back_the_standardised_values():
    tokenizer = GatoTokenizer()
    z = np.array([-3.0, -1.0, -0.2, 0.0, 0.05, 0.7, 2.5])
    bins = torch.from_numpy(tokenizer.encode_continuous(z) - CONTINUOUS_OFFSET)
    features = low_frequency_features(bins, torch.ones_like(bins, dtype=torch.bool), 8.0)
    np.testing.assert_allclose(features[:, 0].numpy(), z, rtol=0.03, atol=2e-4)
    np.testing.assert_allclose((features[:, 1] ** 2 + features[:, 2] ** 2).numpy(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("value", [0, -1.0, True, "8"])
def test_the_period_must_be_positive(value):
    with pytest.raises(ValueError, match="group_value_period must be positive"):
        GatoConfig(group_value_period=value)


@pytest.mark.parametrize("features", ["fourier", "symlog", "symlog_mlp", "lowfreq", "lowfreq_mlp"])
def test_save_and_load_round_trip_keeps_the_groups(tmp_path, features):
    torch.manual_seed(0)
    model = GatoModel(
        make_config(
            continuous_observation_group=4,
            continuous_action_group=2,
            group_value_features=features,
            action_head_skip=features == "lowfreq_mlp",
        )
    )
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.group_value_features == features
    assert loaded.config.continuous_observation_group == 4
    assert loaded.config.continuous_action_group == 2
    assert loaded.config.action_head_skip == (features == "lowfreq_mlp")
    batch = mixed_batch()
    with torch.no_grad():
        a = model(**batch.as_dict()).loss
        b = loaded(**batch.as_dict()).loss
    torch.testing.assert_close(a, b)


def test_an_ungrouped_config_has_no_group_modules_and_old_configs_load_ungrouped():
    model = GatoModel(make_config())
    assert model.groups is None and model.action_head is None
    legacy = GatoConfig.from_dict({"hidden_size": 64, "num_attention_heads": 2, "head_dim": 32})
    assert legacy.continuous_observation_group == 0 and not legacy.grouped


@pytest.mark.parametrize("field", ["continuous_observation_group", "continuous_action_group"])
@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_group_sizes_raise(field, value):
    with pytest.raises(ValueError, match=field):
        GatoConfig(**{field: value})


@pytest.mark.parametrize("value", [0, 3, 2048, True])
def test_head_bins_must_divide_the_token_bins(value):
    with pytest.raises(ValueError, match="action_group_bins must divide 1024"):
        GatoConfig(action_group_bins=value)


def test_coarse_head_classes_decode_to_the_middle_of_their_span():
    torch.manual_seed(0)
    model = GatoModel(make_config(continuous_action_group=2, action_group_bins=256))
    head = model.action_head
    ids = torch.arange(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)
    classes = head.classes(ids)
    assert classes.min() == 0 and classes.max() == 255
    assert bool((head.classes(head.token_ids(classes)) == classes).all())
    assert head.token_ids(torch.tensor([0])).item() == CONTINUOUS_OFFSET + 2


def test_a_grouped_context_is_checked_in_positions_not_tokens():
    torch.manual_seed(0)
    model = GatoModel(
        make_config(
            max_position_embeddings=32, continuous_observation_group=32, continuous_action_group=8
        )  # fmt: skip
    ).eval()
    tokenizer = GatoTokenizer()
    rng = np.random.default_rng(0)
    seq = tokenizer.encode_episode(
        {"continuous": rng.normal(size=(10, 17))}, {"continuous": rng.uniform(-1, 1, (10, 6))}
    )  # 240 tokens, 30 positions
    batch = collate([seq])
    with torch.no_grad():
        model(**batch.as_dict())
    long = tokenizer.encode_episode(
        {"continuous": rng.normal(size=(11, 17))}, {"continuous": rng.uniform(-1, 1, (11, 6))}
    )
    with pytest.raises(ValueError, match="33 positions once grouped"):
        model(**collate([long]).as_dict())
    assert NUM_CONTINUOUS_BINS == 1024


def test_the_value_encoder_starts_as_pytorch_layers_and_loads_unchanged(tmp_path):
    """ "lowfreq_mlp": the observation encoder is Linear-ReLU-Linear-ReLU-Linear at PyTorch's
    fan-in initialisation (uniform within 1 / sqrt(fan_in)), not the model's N(0, 0.02); loading
    the saved model keeps its trained weights."""
    torch.manual_seed(0)
    config = make_config(
        continuous_observation_group=4,
        continuous_action_group=2,
        group_value_features="lowfreq_mlp",
        group_encoder_hidden=48,
    )
    model = GatoModel(config)
    encoder = model.groups.observations
    linears = [m for m in encoder if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [48, 48, config.hidden_size]
    assert linears[0].in_features == 4 * 4  # 4 slots of [z, sin, cos, filled]
    for layer in linears:
        bound = 1 / math.sqrt(layer.in_features)
        weight = layer.weight.detach()
        assert float(weight.abs().max()) <= bound
        assert float(weight.std()) > 0.5 * bound / math.sqrt(3)  # uniform, not 0.02
    assert isinstance(model.groups.actions, torch.nn.Linear)  # actions keep the linear map
    with torch.no_grad():
        linears[0].weight.add_(1.0)  # "trained"
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.groups.observations[0].weight, linears[0].weight)
