"""Which scale a dataset stores its actions on, and control sources tokenizing by it."""

import json

import datasets
import numpy as np
import pytest

from gato.data.action_scale import dataset_action_scale, with_action_scale
from gato.data.sources import ControlSource
from gato.tokens.tokenizer import GatoTokenizer


def _pendulum_dataset(actions, description=None):
    steps = len(actions)
    dataset = datasets.Dataset.from_dict(
        {
            "continuous_observations": [np.zeros((steps, 3), np.float32).tolist()],
            "continuous_actions": [np.asarray(actions, np.float32).reshape(steps, 1).tolist()],
            "rewards": [[0.0] * steps],
        }
    )
    if description is not None:
        dataset.info.description = description
    return dataset


def test_the_scale_a_dataset_records_or_implies():
    assert dataset_action_scale(_pendulum_dataset([0.1])) == "raw"  # JAT's convention
    ours = json.dumps({"created_by": "python -m gato.data collect", "seeds": [0, 1]})
    assert dataset_action_scale(_pendulum_dataset([0.1], ours)) == "unit"  # collected before
    recorded = with_action_scale(_pendulum_dataset([0.1], ours), "raw")
    assert dataset_action_scale(recorded) == "raw"
    assert json.loads(recorded.info.description)["seeds"] == [0, 1]  # other keys kept
    assert dataset_action_scale(recorded, override="unit") == "unit"
    bad = _pendulum_dataset([0.1], json.dumps({"action_scale": "env"}))
    with pytest.raises(ValueError, match=r"metadata is wrong: action scale must be one of"):
        dataset_action_scale(bad)


def test_a_control_source_tokenizes_raw_and_unit_datasets_alike(tmp_path):
    tokenizer = GatoTokenizer()
    source = ControlSource("gym-pendulum", str(tmp_path))
    torques = np.array([1.6, -2.0, 0.5])  # Pendulum-v1 bounds: [-2, 2]
    raw = _pendulum_dataset(torques).with_format("numpy")
    unit = with_action_scale(_pendulum_dataset(torques / 2.0), "unit").with_format("numpy")
    (raw_seq,) = source.tokenize(raw, tokenizer)
    (unit_seq,) = source.tokenize(unit, tokenizer)
    np.testing.assert_array_equal(raw_seq.ids, unit_seq.ids)
    decoded = tokenizer.decode_continuous(raw_seq.ids[raw_seq.loss_mask], mu_law=False)
    np.testing.assert_allclose(decoded * 2.0, torques, atol=2.0 / 1024 + 1e-6)
    # Unit-scale data tokenizes as it always did: caches and resumed runs stay valid.
    assert "bounds" not in source.record()
