"""Algorithm Distillation: source histories, datasets, tokens, windows, in-context loop, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_config

from gato.data.io import save_dataset
from gato.experiments.algorithm_distillation.__main__ import main
from gato.experiments.algorithm_distillation.config import ADConfig
from gato.experiments.algorithm_distillation.dark_room import DarkRoom, dark_room_reward, move
from gato.experiments.algorithm_distillation.evaluate import episodes_to_reach
from gato.experiments.algorithm_distillation.histories import (
    Histories,
    HistoryWindows,
    QLearningConfig,
    encode_episode,
    expert_histories,
    histories_from_dataset,
    histories_to_dataset,
    q_learning_histories,
    reward_code,
    window_episodes,
)
from gato.experiments.algorithm_distillation.in_context import in_context_returns
from gato.modeling.model import GatoModel
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import DISCRETE_OFFSET, SEPARATOR_ID

GOALS = np.array([[5, 4], [0, 8], [7, 1]])


def _check_recorded(h: Histories) -> None:
    """Every recorded step follows the dynamics: next cell and reward from cell and action."""
    assert np.all(h.positions[:, :, 0] == 4)  # every episode starts at the centre
    nxt = move(h.positions[:, :, :-1], h.actions, 9)
    assert np.array_equal(nxt, h.positions[:, :, 1:])
    assert np.array_equal(dark_room_reward(nxt, h.goals[:, None, None]), h.rewards)


def test_q_learning_histories_follow_the_dynamics_and_learn():
    h = q_learning_histories(GOALS, 200, QLearningConfig(), seed=0)
    assert h.positions.shape == (3, 200, 21, 2) and h.actions.shape == (3, 200, 20)
    _check_recorded(h)
    returns = h.returns
    assert returns[:, :10].mean() < 2.0
    assert returns[:, -20:].mean() > 10.0  # the source learns every goal
    assert np.array_equal(q_learning_histories(GOALS, 5, seed=3).actions,
                          q_learning_histories(GOALS, 5, seed=3).actions)  # fmt: skip
    with pytest.raises(ValueError, match="goals"):
        q_learning_histories(np.array([[9, 0]]), 5)
    with pytest.raises(ValueError, match="learning_rate"):
        QLearningConfig(learning_rate=0.0)


def test_expert_histories_are_optimal():
    h = expert_histories(GOALS, 3, seed=0)
    _check_recorded(h)
    assert h.returns.tolist() == [[20.0] * 3, [13.0] * 3, [15.0] * 3]


def test_dataset_round_trip_restores_order(tmp_path):
    h = q_learning_histories(GOALS, 7, seed=1)
    table = histories_to_dataset(h).shuffle(seed=0)  # rows out of order on disk
    save_dataset(table, tmp_path / "histories")
    back = histories_from_dataset(tmp_path / "histories")
    for name in Histories._fields:
        assert np.array_equal(getattr(back, name), getattr(h, name)), name
    save_dataset(histories_to_dataset(h).select(range(20)), tmp_path / "gap")
    with pytest.raises(ValueError, match="equal numbers"):
        histories_from_dataset(tmp_path / "gap")


def test_episode_tokens_carry_the_previous_reward():
    positions = np.array([[4, 4], [5, 4], [5, 4], [4, 4]])
    actions = np.array([2, 0, 4])
    rewards = np.array([1.0, 1.0, 0.0])
    seq = encode_episode(GatoTokenizer(), positions, actions, rewards)
    d = DISCRETE_OFFSET
    sep = SEPARATOR_ID
    assert seq.ids.tolist() == [
        d + 4, d + 4, d + 0, sep, d + 2,  # start code 0
        d + 5, d + 4, d + 2, sep, d + 0,  # reward 1 -> code 2
        d + 5, d + 4, d + 2, sep, d + 4,
        d + 4, d + 4, d + 1, sep,  # the final timestep: last reward 0, no action
    ]  # fmt: skip
    assert np.flatnonzero(seq.loss_mask).tolist() == [4, 9, 14]  # actions only
    assert seq.num_timesteps == 4
    with pytest.raises(ValueError, match="rewards"):
        reward_code(np.array([0.5]))


def test_window_episodes_keep_order():
    rng = np.random.default_rng(0)
    for _ in range(50):
        index = window_episodes(30, 4, 5, rng)
        assert index[0] >= 0 and index[-1] < 30
        assert np.all(np.diff(index) == 5)
    assert {window_episodes(10, 4, 3, rng)[0] for _ in range(20)} == {0}
    with pytest.raises(ValueError, match="spans"):
        window_episodes(10, 4, 4, rng)


def test_history_windows_never_mix_tasks_and_keep_episode_order():
    tokenizer = GatoTokenizer()
    h = q_learning_histories(GOALS, 12, QLearningConfig(epsilon_decay=1.0), seed=2)
    windows = HistoryWindows(tokenizer, h, batch_size=8, context_episodes=3, stride=2, seed=0)
    episode = {}  # token ids of each episode -> (task, index); early episodes are random walks
    for task in range(3):
        for e in range(12):
            ids = encode_episode(tokenizer, h.positions[task, e], h.actions[task, e],
                                 h.rewards[task, e]).ids  # fmt: skip
            episode.setdefault(tuple(ids.tolist()), []).append((task, e))
    length = len(next(iter(episode)))
    assert windows.window_length == 3 * length
    for _ in range(5):
        batch = next(windows).batch
        assert batch.input_ids.shape == (8, 3 * length)
        for row in batch.input_ids.numpy():
            found = [episode[tuple(chunk.tolist())] for chunk in row.reshape(3, length)]
            assert all(len(f) == 1 for f in found), "episodes should be distinct"
            (task0, e0), (task1, e1), (task2, e2) = (f[0] for f in found)
            assert task0 == task1 == task2
            assert (e1 - e0, e2 - e1) == (2, 2)
    state = windows.state_dict()
    first = next(windows).batch.input_ids
    windows.load_state_dict(json.loads(json.dumps(state)))
    assert torch.equal(next(windows).batch.input_ids, first)  # resumable


def test_in_context_loop_writes_the_tokenizer_layout():
    torch.manual_seed(0)
    model = GatoModel(make_config(max_position_embeddings=2 * 104)).eval()
    goals = np.array([[4, 5], [0, 0]])
    returns, tokens = in_context_returns(
        model, goals, num_episodes=3, context_episodes=2, seed=1, return_tokens=True
    )
    assert returns.shape == (2, 3) and tokens.shape == (2, 3, 104)
    tokenizer = GatoTokenizer()
    for row, goal in enumerate(goals):
        for e in range(3):
            # Replay the recorded actions in a fresh environment and tokenize the episode.
            actions = tokens[row, e, 4::5][:20] - DISCRETE_OFFSET
            env = DarkRoom(goal)
            cells = [env.reset()[0]]
            rewards = []
            for a in actions:
                obs, r, *_ = env.step(int(a))
                cells.append(obs)
                rewards.append(r)
            assert returns[row, e] == sum(rewards)
            expected = encode_episode(tokenizer, np.stack(cells), actions, np.array(rewards))
            assert tokens[row, e].tolist() == expected.ids.tolist()
    with pytest.raises(ValueError, match="context"):
        in_context_returns(model, goals, num_episodes=1, context_episodes=3)
    with pytest.raises(ValueError, match="goals"):
        in_context_returns(model, np.zeros((2, 3), np.int64), 1, 2)


def test_episodes_to_reach():
    curve = np.array([0, 1, 2, 3, 4, 5, 5, 5], dtype=float)
    assert episodes_to_reach(curve, 4.0, 1) == 5
    assert episodes_to_reach(curve, 4.5, 2) == 5  # episodes 5-6 average 4.5
    assert episodes_to_reach(curve, 6.0, 2) is None
    with pytest.raises(ValueError, match="window"):
        episodes_to_reach(curve, 1.0, 0)


def test_config_checks():
    with pytest.raises(ValueError, match="context_episodes"):
        ADConfig(context_episodes=1)
    with pytest.raises(ValueError, match="does not fit"):
        ADConfig(history_episodes=10, stride=6)
    with pytest.raises(ValueError, match="preset"):
        ADConfig.from_preset("huge")
    with pytest.raises(ValueError, match="models"):
        ADConfig(models=["rl2"])
    assert ADConfig().context_tokens == 4 * 104


@pytest.fixture
def fresh_accelerate():
    """The trainer's accelerate state is process-wide: leave none behind for other tests."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_tiny_end_to_end_on_cpu(tmp_path, fresh_accelerate):
    out = tmp_path / "ad"
    outputs = main(["all", "--preset", "tiny", "--output_dir", str(out), "--eval_episodes", "4"])
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["eval_episodes"] == 4  # the flag overrides the preset
    assert set(results["curves"]) == {"source", "random", "ad", "ed"}
    assert len(results["curves"]["ad"]["mean"]) == 4
    assert len(results["curves"]["source"]["mean"]) == 24
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "models" / "ad-seed0" / "checkpoints" / "latest").exists()
    # In-context RL reads its own actions: training hides none (the control default hides all).
    latest = (out / "models" / "ad-seed0" / "checkpoints" / "latest").read_text().strip()
    model_config = out / "models" / "ad-seed0" / "checkpoints" / latest / "model" / "config.json"
    saved = json.loads(model_config.read_text())
    assert saved["hide_context_actions"] is False and saved["policy_history_steps"] is None
    run = json.loads((out / "models" / "ad-seed0" / "run.json").read_text())
    assert run["config"]["action_dropout"] == 0.0
    assert set(outputs["train"]) == {"ad-seed0", "ed-seed0"}
    assert outputs["collect"]["histories"] == 77
