"""Continuous values embedded by what they mean (`GatoConfig.value_embedding`): the function
against a reference written from the formula, cached decoding, save/load, old configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_config
from references import value_function_reference

import gato.modeling.config as config_module
from gato.modeling.config import VALUE_EMBEDDINGS, GatoConfig
from gato.modeling.embedding import VALUE_TOP_MULTIPLE, ValueEmbedding, fourier_multiples
from gato.modeling.model import GatoModel
from gato.tokens.batch import collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import CONTINUOUS_OFFSET, DISCRETE_OFFSET, NUM_CONTINUOUS_BINS, SEPARATOR_ID

VARIANTS = [v for v in VALUE_EMBEDDINGS if v != "table"]


def test_frequencies_are_distinct_and_geometric_up_to_the_top():
    multiples = fourier_multiples(16)
    assert multiples[0] == 1 and multiples[-1] == VALUE_TOP_MULTIPLE
    assert len(set(multiples)) == 16 and multiples == sorted(multiples)
    low = fourier_multiples(8, top=8)
    assert low == list(range(1, 9))  # a top below the count still gives distinct frequencies


@pytest.mark.parametrize("top", [64, 8])
@pytest.mark.parametrize("variant", VARIANTS)
def test_value_function_matches_the_formula(variant, top):
    torch.manual_seed(0)
    module = ValueEmbedding(make_config(value_embedding=variant, value_fourier_top=top))
    last = CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS - 1
    ids = [CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + 511, CONTINUOUS_OFFSET + 512, last]
    ids += [DISCRETE_OFFSET + 3, SEPARATOR_ID, 7]
    with torch.no_grad():
        got = module(torch.tensor([ids]))[0]
        torch.testing.assert_close(got, value_function_reference(module, ids), atol=1e-5, rtol=1e-5)
    assert got[4:].abs().max() == 0  # discrete, separator and text ids get nothing


def test_neighbouring_values_start_alike_and_the_model_adds_the_function():
    torch.manual_seed(0)
    model = GatoModel(make_config(value_embedding="table+fourier")).eval()
    ids = torch.tensor([[CONTINUOUS_OFFSET + 100, CONTINUOUS_OFFSET + 101, DISCRETE_OFFSET]])
    with torch.no_grad():
        x = model.embedding(ids)
        f = model.embedding.values(ids)
        torch.testing.assert_close(x, model.embedding.tokens(ids) + f)
    near = torch.dist(f[0, 0], f[0, 1])
    far = torch.dist(f[0, 0], model.embedding.values(ids + 800)[0, 0])
    assert near < 0.5 * far


@pytest.mark.parametrize("variant", ["fourier", "linear"])
def test_without_the_table_prefix_a_value_is_its_function_alone(variant):
    torch.manual_seed(0)
    model = GatoModel(make_config(value_embedding=variant)).eval()
    ids = torch.tensor([[CONTINUOUS_OFFSET + 100, CONTINUOUS_OFFSET + 1023, DISCRETE_OFFSET, 7]])
    with torch.no_grad():
        x = model.embedding(ids)
        f = model.embedding.values(ids)
        rows = model.embedding.tokens(ids)
        torch.testing.assert_close(x[0, :2], f[0, :2])  # no table row on value ids
        torch.testing.assert_close(x[0, 2:], rows[0, 2:])  # other ids: their row
        torch.testing.assert_close(model.embedding.embed_ids(ids), x)


def _control_sequence(tokenizer: GatoTokenizer, steps: int = 5):
    rng = np.random.default_rng(0)
    return tokenizer.encode_episode(
        {"continuous_observations": rng.normal(size=(steps, 3)) * 3},
        {"continuous_actions": rng.uniform(-1, 1, size=(steps, 2))},
    )


@pytest.mark.parametrize("head", ["table", "embedding"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_decoding_matches_the_full_forward(variant, head):
    torch.manual_seed(0)
    model = GatoModel(make_config(value_embedding=variant, value_head=head)).eval()
    seq = _control_sequence(GatoTokenizer())
    full = model(**collate([seq]).as_dict(), return_logits=True).logits
    cache, logits = None, []
    bounds = [0, 4, 7, 8, 13, len(seq) - 1, len(seq)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        piece = collate([seq.slice(start, stop)])
        out = model(
            input_ids=piece.input_ids, local_positions=piece.local_positions,
            past_key_values=cache, use_cache=True, return_logits=True,
        )  # fmt: skip
        cache = out.past_key_values
        logits.append(out.logits)
    torch.testing.assert_close(torch.cat(logits, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["table+fourier", "linear"])
def test_an_embedding_head_scores_each_bin_by_its_input_embedding(variant):
    torch.manual_seed(0)
    model = GatoModel(make_config(value_embedding=variant, value_head="embedding")).eval()
    ids = torch.arange(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)[None]
    with torch.no_grad():
        head = model.output_weight()
        want = model.embedding.embed_ids(ids)[0]  # row + f(v), or f(v) alone
        torch.testing.assert_close(head[CONTINUOUS_OFFSET : CONTINUOUS_OFFSET + 1024], want)
        outside = torch.ones(head.shape[0], dtype=torch.bool)
        outside[CONTINUOUS_OFFSET : CONTINUOUS_OFFSET + 1024] = False
        torch.testing.assert_close(head[outside], model.lm_head.weight[outside], rtol=0, atol=0)
        part = model.output_weight(CONTINUOUS_OFFSET - 3, CONTINUOUS_OFFSET + 5)
        torch.testing.assert_close(part, head[CONTINUOUS_OFFSET - 3 : CONTINUOUS_OFFSET + 5])
    with pytest.raises(ValueError, match="value_head='embedding' needs a value function"):
        make_config(value_embedding="table", value_head="embedding")


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = GatoModel(make_config(value_embedding="table+fourier_mlp")).eval()
    batch = collate([_control_sequence(GatoTokenizer())]).as_dict()
    expected = model(**batch, return_logits=True).logits
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["value_embedding"] == (
        "table+fourier_mlp"
    )
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.value_embedding == "table+fourier_mlp"
    torch.testing.assert_close(loaded(**batch, return_logits=True).logits, expected, rtol=0, atol=0)


def test_a_config_saved_before_the_option_loads_with_the_table(tmp_path, monkeypatch):
    torch.manual_seed(0)
    # What every checkpoint before these fields was: the table, the loss over the vocabulary.
    model = GatoModel(make_config(value_embedding="table", value_loss="vocabulary")).eval()
    batch = collate([_control_sequence(GatoTokenizer())]).as_dict()
    expected = model(**batch, return_logits=True).logits
    expected_loss = model(**batch).loss
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    legacy = ("value_fourier_features", "value_fourier_top", "value_loss", "value_head")
    for key in ("value_embedding", *legacy):
        del config[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.value_embedding == "table" and loaded.embedding.values is None
    assert loaded.config.value_loss == "vocabulary" and loaded.config.value_fourier_top == 64
    assert loaded.config.value_head == "table"
    torch.testing.assert_close(loaded(**batch, return_logits=True).logits, expected, rtol=0, atol=0)
    torch.testing.assert_close(loaded(**batch).loss, expected_loss, rtol=0, atol=0)
    # The missing field comes from the legacy constant, not from today's default.
    monkeypatch.setattr(config_module, "LEGACY_VALUE_EMBEDDING", "table+fourier")
    assert GatoConfig.from_pretrained(tmp_path).value_embedding == "table+fourier"
    assert GatoConfig().value_embedding == "fourier" and GatoConfig().value_loss == "range"


def test_unknown_value_embedding_is_named():
    with pytest.raises(ValueError, match="value_embedding must be one of"):
        GatoConfig(value_embedding="table+sine")
    with pytest.raises(ValueError, match="value_fourier_features"):
        GatoConfig(value_fourier_features=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_the_policy_acts_as_recomputing_the_whole_context(variant, static):
    """The policy's fast paths (a greedy action in one call, the static step) embed fed-back
    action tokens as the full forward does, value function included."""
    from references import ReferencePolicy

    from gato.policy import GatoPolicy, PolicyConfig
    from gato.schema import ActionSpec

    torch.manual_seed(0)
    config = make_config(value_embedding=variant, max_position_embeddings=96, initializer_range=0.2)
    model = GatoModel(config).eval()
    tokenizer = GatoTokenizer()
    spec = ActionSpec("continuous", (3,))
    policy = GatoPolicy(
        model, tokenizer, spec, None, PolicyConfig(slide="recompute", static_cache=static)
    )
    reference = ReferencePolicy(model, tokenizer, spec, None)
    rng = np.random.default_rng(3)
    for _ in range(14):  # a 9-token step in a 96-token context: it slides
        obs = {"continuous_observations": rng.normal(size=5).astype(np.float32)}
        np.testing.assert_array_equal(policy.act(obs), reference.act(obs))
    with pytest.raises(ValueError, match="value_fourier_top"):
        GatoConfig(value_fourier_top=0)
