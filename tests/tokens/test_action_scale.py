"""Continuous actions on one scale: raw environment values and [-1, 1] values tokenize alike."""

import warnings

import numpy as np
import pytest

from gato.schema import ActionSpec
from gato.tasks.registry import get_task
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import CONTINUOUS_OFFSET, NUM_CONTINUOUS_BINS

HALF_BIN = 1.0 / NUM_CONTINUOUS_BINS  # half a bin's width on [-1, 1]


@pytest.fixture(scope="module")
def tok():
    return GatoTokenizer()


def _round_trip(tok, spec, raw, scale="raw"):
    """Tokenize one step's action stored on `scale`, decode it, map it to the environment."""
    observation = {"continuous_observations": np.zeros(3, np.float32)}
    seq = tok.encode_timestep(observation, raw, spec, action_scale=scale)
    ids = seq.ids[-spec.num_tokens :]
    return ids, spec.from_unit(tok.decode_action(ids, spec))


def test_raw_metaworld_and_humanoid_actions_decode_to_the_same_environment_action(tok):
    # Meta-World: bounds [-1, 1]; JAT stores values far outside them (the simulator clips).
    metaworld = get_task("metaworld-reach").action
    raw = np.array([-19.8, 0.25, 3.5, -0.6])
    with pytest.warns(UserWarning, match=r"outside the task's bounds \[-1, 1\]"):
        _, env_action = _round_trip(tok, metaworld, raw)
    np.testing.assert_allclose(env_action, np.clip(raw, -1, 1), atol=HALF_BIN * 1 + 1e-6)
    # Humanoid: bounds +-0.4, so a raw 0.3 is three quarters of the range, not 0.3 of it.
    humanoid = get_task("gym-humanoid").action
    assert humanoid.bounds()[1][0] == pytest.approx(0.4)
    raw = np.linspace(-0.39, 0.39, 17)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing lies outside: no warning
        ids, env_action = _round_trip(tok, humanoid, raw)
    np.testing.assert_allclose(env_action, raw, atol=HALF_BIN * 0.4 + 1e-6)
    # The same environment action stored on the unit scale gives the same tokens.
    unit_ids, _ = _round_trip(tok, humanoid, raw / 0.4, scale="unit")
    np.testing.assert_array_equal(ids, unit_ids)
    # Before normalisation a raw 0.39 was binned as 0.39 of the range: 2.5x too small.
    assert tok.decode_continuous(ids[-1:], mu_law=False)[0] == pytest.approx(0.975, abs=2e-3)


def test_pusher_raw_actions_are_not_clipped_at_one(tok):
    pusher = get_task("gym-pusher").action
    raw = np.array([1.8, -1.5, 0.0, 2.0, -2.0, 0.5, -0.5])
    _, env_action = _round_trip(tok, pusher, raw)
    np.testing.assert_allclose(env_action, raw, atol=HALF_BIN * 2 + 1e-6)


def test_per_element_bounds_and_episodes(tok):
    spec = ActionSpec("continuous", (2,), low=(-1.0, 0.0), high=(1.0, 10.0))
    actions = np.array([[0.5, 2.5], [-1.0, 10.0], [1.0, 0.0]])
    seq = tok.encode_episode(
        {"continuous": np.zeros((3, 1))}, {"continuous": actions}, spec, action_scale="raw"
    )
    ids = seq.ids[seq.loss_mask].reshape(3, 2)
    np.testing.assert_allclose(
        spec.from_unit(tok.decode_continuous(ids, mu_law=False)), actions, atol=10 * HALF_BIN
    )
    assert ids[1, 1] == CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS - 1  # high -> the last bin
    assert ids[2, 1] == CONTINUOUS_OFFSET  # low -> the first bin


def test_bounds_per_element_of_a_matrix_action():
    spec = ActionSpec("continuous", (2, 2), low=(0.0, 1.0, 2.0, 3.0), high=10.0)
    low, high = spec.bounds()
    np.testing.assert_array_equal(low, [[0.0, 1.0], [2.0, 3.0]])
    assert high.shape == (2, 2) and (high == 10.0).all()
    np.testing.assert_allclose(spec.from_unit(-np.ones((2, 2))), low)


def test_unit_scale_is_unchanged_by_bounds(tok):
    # Old datasets and checkpoints: [-1, 1] actions give the tokens they always gave.
    plain, bounded = ActionSpec("continuous", (1,)), get_task("gym-pendulum").action
    a = tok.encode_timestep({"continuous": np.zeros(1)}, np.array([0.3]), plain)
    b = tok.encode_timestep({"continuous": np.zeros(1)}, np.array([0.3]), bounded)
    np.testing.assert_array_equal(a.ids, b.ids)
    # The same torque raw (0.6 N m of Pendulum's 2) gives the same tokens too.
    c = tok.encode_timestep(
        {"continuous": np.zeros(1)}, np.array([0.6]), bounded, action_scale="raw"
    )
    np.testing.assert_array_equal(a.ids, c.ids)


def test_bad_scales_and_bounds(tok):
    spec = ActionSpec("continuous", (1,), low=-2.0, high=2.0)
    with pytest.raises(ValueError, match=r"action scale must be one of \('unit', 'raw'\)"):
        tok.encode_timestep({"continuous": np.zeros(1)}, np.array([0.1]), spec, "env")
    # No spec: bounds [-1, 1], and clipping is announced.
    with pytest.warns(UserWarning, match="outside the task's bounds"):
        seq = tok.encode_episode(
            {"continuous": np.zeros((1, 1))}, {"continuous": [[-3.0]]}, None, "raw"
        )
    assert seq.ids[-1] == CONTINUOUS_OFFSET
    with pytest.raises(ValueError, match="low must be below high"):
        ActionSpec("continuous", (1,), low=1.0, high=-1.0)
    with pytest.raises(ValueError, match="1 or 2 finite numbers"):
        ActionSpec("continuous", (2,), low=(0.0, 0.0, 0.0), high=1.0)
    with pytest.raises(ValueError, match="continuous actions only"):
        ActionSpec("discrete", (), num_values=3, low=0.0, high=1.0)
    with pytest.raises(ValueError, match="trailing shape"):
        spec.from_unit(np.zeros(3))
