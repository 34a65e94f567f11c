"""Acceptance: JAT's hub layout on disk -> episodes of a registered task -> the real trainer ->
a policy acting in the task's own gymnasium environment, within its action bounds.

Pusher is the task: JAT recorded its actions raw, on the environment's [-2, 2] scale, so the data
only trains the policy's [-1, 1] tokens if they are rescaled by the task's bounds on the way in
(`gato.data.action_scale`), and the policy's actions only fit the environment if they are mapped
back on the way out.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from jat_fixtures import write_config

from gato.data import load_episodes
from gato.data.action_scale import dataset_action_scale
from gato.tasks.registry import get_task

TASK = "gym-pusher"
CONFIG = "mujoco-pusher"
LENGTHS = (7, 0, 5, 6, 4, 8)
"""Steps of the episodes written; the second is empty, as JAT's data has such rows."""


def _pusher_rows(seed: int = 0) -> dict[str, list]:
    """Pusher episodes as JAT's script stores them: 23 observation floats, 7 raw actions."""
    rng = np.random.default_rng(seed)
    return {
        "continuous_observations": [rng.normal(size=(t, 23)).tolist() for t in LENGTHS],
        "continuous_actions": [rng.uniform(-2.0, 2.0, (t, 7)).tolist() for t in LENGTHS],
        "rewards": [rng.normal(size=t).tolist() for t in LENGTHS],
    }


pytestmark = pytest.mark.usefixtures("quiet_datasets")


@pytest.fixture
def jat_root(tmp_path):
    """A local mirror of the hub dataset: `<root>/mujoco-pusher/train-00000-of-00002-*.parquet`."""
    root = tmp_path / "jat-dataset"
    write_config(root, CONFIG, "uploaded", splits=("train", "test"), shards=2,
                 rows=_pusher_rows())  # fmt: skip
    return root


def test_jat_layout_trains_and_the_policy_acts_in_the_real_environment(jat_root, tmp_path):
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    from gato.policy import GatoPolicy
    from gato.tokens.windows import fit_stop, sequence_bounds, take_steps
    from gato.training.trainer import main

    task = get_task(TASK)
    # The registry task finds its config folder in the mirror; the empty episode is dropped.
    episodes = load_episodes(jat_root, task=TASK)
    assert len(episodes) == len(LENGTHS) - 1
    assert dataset_action_scale(episodes) == "raw"
    raw = np.concatenate([row["continuous_actions"] for row in episodes])
    assert np.abs(raw).max() > 1.0  # outside [-1, 1]: a missed rescale would be clipped data

    recipe = tmp_path / "jat.toml"
    recipe.write_text(
        f'name = "jat-pusher"\n[[sources]]\ntask = "{TASK}"\nweight = 1.0\npath = "{jat_root}"\n'
    )
    run = tmp_path / "run"
    logs = main([
        "--preset", "tiny", "--mixture", str(recipe), "--steps", "3", "--global_batch", "2",
        "--context", "64", "--output_dir", str(run), "--cache_dir", str(tmp_path / "cache"),
        "--checkpoint_every", "3", "--mixed_precision", "no", "--report_to", "none",
        "--learning_rate", "1e-3",
    ])  # fmt: skip
    assert [log.step for log in logs] == [1, 2, 3]
    assert all(np.isfinite(log.loss) and log.loss > 0 for log in logs)
    assert set(logs[-1].family_loss) == {"gym"}
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["config"]["mixture"] == str(recipe)

    policy = GatoPolicy.from_pretrained(run, task=TASK, prompt=None)
    # A demonstration prompt from the same local data, on the tokens' scale as training saw it.
    episode = policy.tokenizer.encode_jat_episode(episodes[0], task.action, "raw")
    prompt = take_steps(episode, 0, fit_stop(sequence_bounds(episode), 0, 32))
    assert prompt.num_timesteps >= 1

    env = gym.make(task.env["id"])
    try:
        low, high = env.action_space.low, env.action_space.high
        assert np.allclose(low, -2.0) and np.allclose(high, 2.0)  # the registry's bounds
        observation, _ = env.reset(seed=0)
        policy.reset(prompt)
        actions = []
        for _ in range(5):
            action = np.asarray(policy.act(observation))
            assert action.shape == env.action_space.shape
            assert env.action_space.contains(action.astype(env.action_space.dtype)), action
            actions.append(action)
            observation, _, terminated, truncated, _ = env.step(action)
            assert not (terminated or truncated)
    finally:
        env.close()
    assert len(actions) == 5
