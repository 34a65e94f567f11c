"""DAgger collection: a saved learner plays; the expert's action in each state reached is kept."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from torch import nn

from gato.data import load_episodes
from gato.data.__main__ import main
from gato.data.collect import CollectConfig, collect
from gato.tasks.envs import make_env
from gato.tasks.experts import make_expert
from gato.tasks.experts.learner import LearnerLedExpert, load_learner, save_learner
from gato.tasks.registry import get_task


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


class _Constant(nn.Module):
    """Observations (B, n) -> `out` for every row, whatever they are (plus a weight, so the
    export sees a parameter)."""

    def __init__(self, out: list[float]) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))
        self.register_buffer("out", torch.tensor(out))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.out.expand(obs.shape[0], -1) + self.scale * obs.sum(-1, keepdim=True)


def _save(tmp_path, task_id: str, out: list[float], name: str = "learner.pt2"):
    task = get_task(task_id)
    size = task.observation["continuous_observations"].shape[0]
    example = torch.zeros(1, size)
    return save_learner(_Constant(out), example, tmp_path / name, task, "continuous_observations")


def test_a_saved_learner_gives_the_network_s_choice(tmp_path):
    task = get_task("gym-cartpole")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    path = save_learner(
        net, torch.zeros(1, 4), tmp_path / "mlp.pt2", task, "continuous_observations"
    )
    learner = load_learner(path, task)
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = rng.normal(size=4).astype(np.float32)
        expected = int(net(torch.from_numpy(obs)[None]).argmax())
        assert learner({"continuous_observations": obs}) == expected


def test_a_continuous_learner_s_action_is_clipped(tmp_path):
    task = get_task("gym-pendulum")
    learner = load_learner(_save(tmp_path, "gym-pendulum", [5.0]), task)
    action = learner({"continuous_observations": np.zeros(3, np.float32)})
    assert action.dtype == np.float32 and action.tolist() == [1.0]


def test_a_learner_is_refused_on_another_task_or_a_wrong_file(tmp_path):
    path = _save(tmp_path, "gym-cartpole", [1.0, 0.0])
    with pytest.raises(ValueError, match="trained on task 'gym-cartpole', not 'gym-pendulum'"):
        load_learner(path, get_task("gym-pendulum"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_learner(tmp_path / "missing.pt2", get_task("gym-cartpole"))
    (tmp_path / "junk.pt2").write_bytes(b"not a program")
    with pytest.raises(ValueError, match="not a saved learner"):
        load_learner(tmp_path / "junk.pt2", get_task("gym-cartpole"))
    learner = load_learner(path, get_task("gym-cartpole"))
    with pytest.raises(ValueError, match=r"shape \(3,\), trained on \(4,\)"):
        learner({"continuous_observations": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="no observation column 'image_observations'"):
        save_learner(nn.Linear(4, 2), torch.zeros(1, 4), tmp_path / "x.pt2",
                     get_task("gym-cartpole"), "image_observations")  # fmt: skip


def test_the_learner_plays_and_the_expert_labels(tmp_path):
    """A learner that always pushes left drops the pole within a few dozen steps; the episode
    records, in exactly the states it led to, what the expert would have done there."""
    task = get_task("gym-cartpole")
    path = _save(tmp_path, "gym-cartpole", [1.0, 0.0])  # always action 0
    result = collect(
        CollectConfig("gym-cartpole", 2, output=str(tmp_path / "dagger"), seed=7,
                      learner=str(path), progress=False, filter=False)
    )  # fmt: skip
    meta = json.loads(load_episodes(tmp_path / "dagger").info.description)
    assert meta["learner"] == str(path.resolve()) and meta["expert_mix"] == 0.0
    episodes = load_episodes(tmp_path / "dagger")
    for index, seed in enumerate((7, 8)):
        observations = np.asarray(episodes[index]["continuous_observations"])
        labels = np.asarray(episodes[index]["discrete_actions"])
        assert (
            len(labels) < 60 and result.returns[index] < 60
        )  # the learner's play, not the expert's
        assert labels.mean() > 0.5  # the expert pushes back right
        clean = make_expert(task, seed)
        with make_env(task) as env:
            again = [clean.act({"continuous_observations": o}, env) for o in observations]
        np.testing.assert_array_equal(again, labels)


def test_with_the_expert_mixed_in_fully_the_expert_plays(tmp_path):
    task = get_task("gym-cartpole")
    expert = make_expert(task, 3, learner=str(_save(tmp_path, "gym-cartpole", [1.0, 0.0])),
                         expert_mix=1.0)  # fmt: skip
    assert isinstance(expert, LearnerLedExpert)
    with make_env(task) as env:
        obs = env.reset(seed=3)
        for _ in range(300):
            played, label = expert.act_and_label(obs, env)
            assert played == label
            step = env.step(played)
            obs = step.observation
            if step.terminated or step.truncated:
                break
        assert not step.terminated  # the expert balances the pole


def test_bad_learner_settings_are_refused(tmp_path, capsys):
    path = str(_save(tmp_path, "gym-cartpole", [1.0, 0.0]))
    with pytest.raises(ValueError, match="expert_mix must lie in"):
        CollectConfig("gym-cartpole", 1, learner=path, expert_mix=1.5)
    with pytest.raises(ValueError, match="pass a learner"):
        CollectConfig("gym-cartpole", 1, expert_mix=0.5)
    with pytest.raises(ValueError, match="learner and dart both set"):
        CollectConfig("gym-cartpole", 1, learner=path, dart=0.1)
    with pytest.raises(FileNotFoundError, match="missing.pt2: no such file"):
        CollectConfig("gym-cartpole", 1, learner=str(tmp_path / "missing.pt2"))
    with pytest.raises(ValueError, match="learner and action_noise"):
        make_expert(get_task("gym-cartpole"), 0, learner=path, action_noise=0.1)
    assert main(["collect", "--suite", "gym", "--learner", path]) != 0
    assert "--learner go with --task" in capsys.readouterr().err


def test_collection_with_a_learner_in_two_workers_matches_one(tmp_path):
    path = str(_save(tmp_path, "gym-cartpole", [0.0, 1.0]))
    for workers in (1, 2):
        collect(
            CollectConfig("gym-cartpole", 2, output=str(tmp_path / f"w{workers}"), seed=11,
                          learner=path, expert_mix=0.5, workers=workers, progress=False,
                          filter=False)
        )  # fmt: skip
    one, two = load_episodes(tmp_path / "w1"), load_episodes(tmp_path / "w2")
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a["discrete_actions"], b["discrete_actions"])
        np.testing.assert_array_equal(a["continuous_observations"], b["continuous_observations"])
