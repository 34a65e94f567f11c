"""GatoConfig: fields, cross-field checks, presets and their parameter counts."""

from __future__ import annotations

import pytest
import torch
from helpers import make_config

from gato.modeling.config import PRESETS, GatoConfig
from gato.vocab import BOS_ID, EOS_ID, PAD_ID, PADDED_VOCAB_SIZE


def test_defaults_are_the_79m_model_over_the_padded_vocabulary():
    cfg = GatoConfig()
    assert cfg.model_type == "gato"
    assert cfg.vocab_size == PADDED_VOCAB_SIZE
    assert (cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id) == (PAD_ID, BOS_ID, EOS_ID)
    assert cfg.tie_word_embeddings
    assert cfg.max_position_embeddings == 1024
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size) == (8, 24, 768)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("79m", (8, 24, 768, 3072, 32)),
        ("364m", (12, 12, 1536, 6144, 128)),
        ("1.18b", (24, 16, 2048, 8192, 128)),
    ],
)
def test_paper_presets_have_the_paper_shapes(name, shape):
    cfg = GatoConfig.from_preset(name)
    got = (
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.head_dim,
    )
    assert got == shape


def test_preset_overrides():
    cfg = GatoConfig.from_preset("tiny", dropout=0.1, max_position_embeddings=512)
    assert cfg.dropout == 0.1 and cfg.max_position_embeddings == 512
    assert cfg.hidden_size == PRESETS["tiny"]["hidden_size"]


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*tiny"):
        GatoConfig.from_preset("huge")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"head_dim": 31}, "head_dim=31 must be even"),
        ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
        ({"resnet_channels": 48, "resnet_groups": 32}, "divisible by resnet_groups"),
        ({"vocab_size": 1000}, "smaller than the"),
        ({"pad_token_id": PADDED_VOCAB_SIZE}, "pad_token_id=.* inside the vocabulary"),
        ({"patch_size": 10}, "multiple of 4"),
        ({"dropout": 1.0}, "dropout must lie in"),
        ({"rope_theta": 0.0}, "rope_theta"),
        ({"patch_encoder": "vit"}, "patch_encoder must be one of .*'vit'"),
    ],
)
def test_inconsistent_fields_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        GatoConfig(**overrides)


def test_config_round_trips_through_json(tmp_path):
    cfg = GatoConfig.from_preset("tiny", dropout=0.05)
    cfg.save_pretrained(tmp_path)
    loaded = GatoConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == cfg.to_dict()


def test_auto_config_knows_gato(tmp_path):
    from transformers import AutoConfig

    import gato.modeling.model  # noqa: F401  (registers the Auto classes)

    GatoConfig.from_preset("tiny").save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), GatoConfig)


@pytest.mark.parametrize("name, target", [("79m", 79e6), ("364m", 364e6), ("1.18b", 1.18e9)])
def test_preset_parameter_counts_within_ten_percent(name, target):
    from gato.modeling.model import GatoModel

    with torch.device("meta"):
        model = GatoModel(GatoConfig.from_preset(name))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - target) / target < 0.10, f"{name}: {count / 1e6:.1f}M parameters"
    assert model.lm_head.weight is model.embedding.tokens.weight


def test_tiny_preset_is_a_few_million_parameters():
    from gato.modeling.model import GatoModel

    with torch.device("meta"):
        model = GatoModel(GatoConfig.from_preset("tiny"))
    assert 3e6 < sum(p.numel() for p in model.parameters()) < 8e6


def test_observation_statistics_travel_with_a_saved_model(tmp_path):
    import numpy as np

    from gato.modeling.model import GatoModel

    record = {"gym-pendulum": {"mean": [0.5, -0.1, 0.0], "std": [0.4, 0.6, 2.5]}}
    GatoModel(make_config(observation_statistics=record)).save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).config
    stats = loaded.task_statistics("gym-pendulum")
    np.testing.assert_array_equal(stats.mean, [0.5, -0.1, 0.0])
    np.testing.assert_array_equal(stats.std, [0.4, 0.6, 2.5])
    assert loaded.task_statistics("gym-cartpole") is None


def test_a_config_saved_before_statistics_tokenizes_values_as_they_come():
    legacy = GatoConfig.from_dict({"hidden_size": 64, "num_attention_heads": 2, "head_dim": 32})
    assert legacy.observation_statistics is None
    assert legacy.task_statistics("gym-pendulum") is None


@pytest.mark.parametrize(
    "record",
    [{"gym-pendulum": {"mean": [0.0]}}, {"gym-pendulum": {"mean": [0.0], "std": [float("nan")]}}],
)
def test_bad_statistics_records_name_their_task(record):
    with pytest.raises(ValueError, match=r"observation_statistics\['gym-pendulum'\]"):
        GatoConfig(observation_statistics=record)
