"""A policy in a plain gymnasium loop: the environment's own observations and actions."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import make_config
from test_policy import save_run

from gato.modeling.model import GatoModel
from gato.policy import GatoPolicy
from gato.tasks.envs import ObservationError, make_env
from gato.tasks.experts import make_expert
from gato.tasks.registry import get_task
from gato.tokens.batch import collate
from gato.tokens.tokenizer import GatoTokenizer

CONTEXT = 96


def _expert_episode(task_id: str, seed: int):
    """One expert episode through the project's adapter: canonical observations and actions."""
    task = get_task(task_id)
    observations, actions = [], []
    with make_env(task) as env:
        expert = make_expert(task, seed)
        obs = env.reset(seed=seed)
        for _ in range(60):
            action = expert.act(obs, env)
            observations.append(obs["continuous_observations"])
            actions.append(action)
            step = env.step(action)
            obs = step.observation
            if step.terminated or step.truncated:
                break
    return task, np.stack(observations), np.asarray(actions)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny model behaviour-cloned for a few steps on Pendulum and CartPole expert steps,
    saved as a training run folder."""
    tokenizer = GatoTokenizer()
    sequences = []
    for task_id in ("gym-pendulum", "gym-cartpole"):
        task, obs, actions = _expert_episode(task_id, seed=0)
        kind = task.action.kind
        sequences.append(
            tokenizer.encode_episode({"continuous": obs}, {kind: actions}, task.action)
        )
    torch.manual_seed(0)
    model = GatoModel(make_config(max_position_embeddings=CONTEXT))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(30):
        windows = []
        for seq in sequences:
            start = int(rng.integers(0, len(seq) - CONTEXT))
            windows.append(seq.slice(start, start + CONTEXT))
        loss = model(**collate(windows).as_dict()).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learnt something
    return save_run(tmp_path_factory.mktemp("loop"), model.eval())


def test_a_raw_pendulum_loop_as_written(run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no demonstration data here: no prompt, a warning
        policy = GatoPolicy.from_pretrained(run, task="gym-pendulum")
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    twin = GatoPolicy.from_pretrained(run, task="gym-pendulum", prompt=None)
    policy.reset(twin.default_prompt)  # the same (empty) prompt as the twin
    steps, done = 0, False
    while not done:
        action = policy.act(obs)
        assert env.action_space.contains(action), action  # float32 (1,) in [-2, 2]
        # The same step through the canonical dict: the [-1, 1] action, twice as small.
        unit = twin.act({"continuous_observations": obs})
        np.testing.assert_allclose(action, 2.0 * unit, rtol=1e-6)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        steps += 1
    assert steps == 200 and truncated


def test_a_cartpole_loop_through_the_wrapper(run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        policy = GatoPolicy.from_pretrained(run, task="gym-cartpole")
    env = policy.for_env(gym.make("CartPole-v1"))
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        assert policy.rows[0].steps == 0  # reset restarted the policy's context
        done, steps = False, 0
        while not done:
            action = env.act(obs)
            assert isinstance(action, int) and action in (0, 1)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            steps += 1
        assert policy.rows[0].steps == steps


def test_a_dm_control_observation_dict(run):
    # dm-control's dict, keys in any order: flattened as the adapter flattens it.
    policy = GatoPolicy.from_pretrained(run, task="dmc-cartpole-balance", prompt=None)
    twin = GatoPolicy.from_pretrained(run, task="dmc-cartpole-balance", prompt=None)
    raw = OrderedDict(velocity=np.array([0.1, -0.2]), position=np.array([0.0, 1.0, 0.0]))
    action = policy.act(raw)
    canonical = twin.act({"continuous_observations": np.array([0, 1, 0, 0.1, -0.2], np.float32)})
    np.testing.assert_array_equal(action, canonical)  # dm-control's bounds are [-1, 1]
    assert action.dtype == np.float32 and action.shape == (1,)


def test_bad_observations_name_what_was_given_and_expected(run):
    policy = GatoPolicy.from_pretrained(run, task="gym-pendulum", prompt=None)
    with pytest.raises(ObservationError, match=r"expected shape \(3,\), got \(4,\); expected "):
        policy.act(np.zeros(4, np.float32))
    with pytest.raises(ObservationError, match=r"an array of shape \(3,\), got a str"):
        policy.act("upright")
    dmc = GatoPolicy.from_pretrained(run, task="dmc-cartpole-balance", prompt=None)
    with pytest.raises(ObservationError, match=r"dm-control's observation dict .* got a float32"):
        dmc.act(np.zeros(5, np.float32))
    taskless = GatoPolicy.from_pretrained(
        run, action_spec=get_task("gym-pendulum").action, prompt=None
    )
    with pytest.raises(ValueError, match=r"keys among \('text_observations'.*got a float32 array"):
        taskless.act(np.zeros(3, np.float32))


def test_environments_the_checkpoint_never_trained_on_are_refused(run):
    cartpole = GatoPolicy.from_pretrained(run, task="gym-cartpole", prompt=None)
    with pytest.raises(ValueError, match=r"trained on 2 discrete actions \[0, 2\).*Discrete\(3\)"):
        cartpole.for_env(gym.make("Acrobot-v1"))
    with pytest.raises(ValueError, match="plays 2 discrete actions.*Box"):
        cartpole.for_env(gym.make("Pendulum-v1"))
    pendulum = GatoPolicy.from_pretrained(run, task="gym-pendulum", prompt=None)
    with pytest.raises(ValueError, match=r"within low=\[-2.0\], high=\[2.0\]"):
        pendulum.for_env(gym.make("MountainCarContinuous-v0"))
    with pytest.raises(ValueError, match=r"observations of shape|continuous_observations of shape"):
        pendulum.for_env(_PendulumWithWiderObservations())
    taskless = GatoPolicy.from_pretrained(
        run, action_spec=get_task("gym-pendulum").action, prompt=None
    )
    with pytest.raises(ValueError, match="needs a policy that knows its task"):
        taskless.for_env(gym.make("Pendulum-v1"))


class _PendulumWithWiderObservations(gym.Wrapper):
    def __init__(self):
        super().__init__(gym.make("Pendulum-v1"))
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
