"""benchmarks/control_learning.py's discrete-action specialists: the MLP on state (cartpole)
and the Nature CNN on frame stacks (Pong)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch

from gato.data.collect import CollectConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import control_learning  # noqa: E402


def _stacks(frames: np.ndarray, depth: int = 4) -> np.ndarray:
    """Frame stacks as the Atari adapter builds them: oldest first, the first frame repeated."""
    padded = np.concatenate([np.repeat(frames[:1], depth - 1, axis=0), frames])
    return np.stack([np.moveaxis(padded[t : t + depth], 0, -1) for t in range(len(frames))])


def test_frame_stacks_rebuild_every_observation_exactly():
    rng = np.random.default_rng(0)
    episodes = [
        {"image_observations": _stacks(rng.integers(0, 256, (n, 6, 5), dtype=np.uint8))}
        for n in (7, 2, 5)
    ]
    stacks = control_learning.FrameStacks(episodes)
    everything = np.concatenate([e["image_observations"] for e in episodes])
    assert len(stacks) == len(everything) == 14 and stacks.depth == 4
    got = stacks[torch.arange(len(everything))].numpy()
    np.testing.assert_array_equal(got, everything)
    shuffled = torch.from_numpy(rng.permutation(len(everything)))
    np.testing.assert_array_equal(stacks[shuffled].numpy(), everything[shuffled.numpy()])
    broken = [{"image_observations": rng.integers(0, 256, (8, 6, 5, 4), dtype=np.uint8)}]
    with pytest.raises(ValueError, match="do not shift by one frame"):
        control_learning.FrameStacks(broken)


def _collect(tmp_path, task: str, episodes: int, policy: str | None = None, seed: int = 0) -> Path:
    datasets.disable_progress_bars()
    out = tmp_path / task
    collect(CollectConfig(task, episodes, output=str(out), progress=False, filter=False,
                          policy=policy, seed=seed))  # fmt: skip
    datasets.enable_progress_bars()
    return out


def _config(data: Path, task: str, learner: str, **fields) -> control_learning.BenchConfig:
    base = dict(task=task, data=str(data), learners=learner, steps=(5, 40), batch_timesteps=32,
                eval_episodes=2, eval_max_steps=30, width=32)  # fmt: skip
    return control_learning.BenchConfig(**{**base, **fields})


def test_discrete_mlp_learns_cartpole_and_plays_it(tmp_path):
    data = _collect(tmp_path, "gym-cartpole", 2)
    (curve,) = control_learning.run(_config(data, "gym-cartpole", "mlp"))
    assert curve.learner == "mlp" and curve.steps == [5, 40]
    assert all(math.isfinite(s) for s in curve.scores)
    assert curve.held_out_losses == []  # none held out, none measured
    assert curve.losses[-1] < curve.losses[0] < math.log(2) + 0.1  # two actions: ln 2 at chance
    with pytest.raises(ValueError, match="no image observations"):
        control_learning.run(_config(data, "gym-cartpole", "cnn"))


def test_cnn_trains_on_pong_frames_and_plays_pong(tmp_path):
    data = _collect(tmp_path, "atari-pong", 1, policy="random")
    config = _config(data, "atari-pong", "cnn", steps=(2, 6), batch_timesteps=8, eval_episodes=1)
    (curve,) = control_learning.run(config)
    assert curve.learner == "cnn" and curve.parameters > 1_000_000  # the Nature CNN's size
    assert all(math.isfinite(s) for s in curve.scores + curve.losses)


def test_a_cnn_of_previous_actions_and_frame_differences_trains_and_plays_pong(tmp_path):
    data = _collect(tmp_path, "atari-pong", 1, policy="random")
    config = _config(data, "atari-pong", "cnn:prev=2:diff=1", steps=(2, 4), batch_timesteps=8,
                     eval_episodes=1)  # fmt: skip
    (curve,) = control_learning.run(config)
    assert curve.learner == "cnn:prev=2:diff=1" and all(math.isfinite(s) for s in curve.scores)
    config = _config(data, "atari-pong", "cnn:prev=2", save_learners=str(tmp_path / "saved"))
    with pytest.raises(ValueError, match="reads previous actions too"):
        control_learning.run(config)


def test_frame_stacks_read_lazily_each_episode_once(tmp_path):
    """From a dataset on disk through `LazyEpisodes`, the same frames as from the episodes held
    in a list; each episode is read once, and a column alone."""
    rng = np.random.default_rng(1)
    held = [
        {
            "image_observations": _stacks(rng.integers(0, 256, (n, 6, 5), dtype=np.uint8)),
            "discrete_actions": rng.integers(0, 6, n).astype(np.int64),
        }
        for n in (4, 9, 3)
    ]
    # Frames stored as the collected data stores them: a list of images per episode.
    features = datasets.Features(
        {
            "image_observations": datasets.List(datasets.Image()),
            "discrete_actions": datasets.List(datasets.Value("int64")),
        }
    )
    rows = [
        {**e, "image_observations": [PIL.Image.fromarray(f) for f in e["image_observations"]]}
        for e in held
    ]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(tmp_path / "d"))
    dataset = datasets.load_from_disk(str(tmp_path / "d")).with_format("numpy")
    reads: list[int] = []

    class Counting(control_learning.LazyEpisodes):
        def __getitem__(self, index: int) -> dict:
            reads.append(index)
            return super().__getitem__(index)

    lazy = Counting(dataset, 3)
    stacks = control_learning.FrameStacks(lazy)
    assert reads == [0, 1, 2]
    everything = np.concatenate([e["image_observations"] for e in held])
    np.testing.assert_array_equal(stacks[torch.arange(16)].numpy(), everything)
    actions = control_learning.episode_column(lazy, "discrete_actions")
    assert reads == [0, 1, 2]  # the column came without the episodes' images
    for got, episode in zip(actions, held, strict=True):
        np.testing.assert_array_equal(got, episode["discrete_actions"])
    assert len(Counting(dataset, 2)) == 2
    with pytest.raises(IndexError, match="episode 2 of 2"):
        Counting(dataset, 2)[2]
    with pytest.raises(ValueError, match=r"count 4 outside 0..3"):
        control_learning.LazyEpisodes(dataset, 4)
    with pytest.raises(ValueError, match="no episodes"):
        control_learning.FrameStacks([])
    floats = [{"image_observations": held[0]["image_observations"].astype(np.float32)}]
    with pytest.raises(ValueError, match="uint8 frame stacks, got float32"):
        control_learning.FrameStacks(floats)


def test_saved_learners_play_as_the_specialist_scored_them(tmp_path):
    """`save_learners`: one file per scored point, each the weights of that point; the last
    chooses what the trained network chooses, on the task's own observations."""
    from gato.tasks.experts.learner import load_learner
    from gato.tasks.registry import get_task

    data = _collect(tmp_path, "gym-cartpole", 2)
    folder = tmp_path / "learners"
    config = _config(data, "gym-cartpole", "mlp", save_learners=str(folder))
    task = get_task("gym-cartpole")
    episodes = control_learning.load_data(str(data), task)
    net, _batch, _actor, save = control_learning.discrete_learner("mlp", task, episodes, config)
    control_learning.run(config)
    assert sorted(p.name for p in folder.iterdir()) == [
        "mlp-seed0-step40.pt2",
        "mlp-seed0-step5.pt2",
    ]
    save(7)  # the untrained twin, saved as the run saves
    learner = load_learner(folder / "mlp-seed0-step7.pt2", get_task("gym-cartpole"))
    obs = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(obs)).argmax(-1).tolist()
    assert [learner({"continuous_observations": o}) for o in obs] == expected


def test_data_joins_folders_and_takes_the_first_episodes(tmp_path):
    from gato.tasks.registry import get_task

    task = get_task("gym-cartpole")
    first = _collect(tmp_path / "a", "gym-cartpole", 3)
    second = _collect(tmp_path / "b", "gym-cartpole", 2, seed=20)
    joined = control_learning.load_data(f"{first}@1,{second}", task)
    alone = [control_learning.load_data(str(p), task) for p in (first, second)]
    assert len(joined) == 3
    expected = [alone[0][0], alone[1][0], alone[1][1]]
    assert len(alone[1][0]["rewards"]) != len(alone[0][1]["rewards"]) or not np.array_equal(
        alone[1][0]["continuous_observations"], alone[0][1]["continuous_observations"]
    )  # the folders' episodes differ, so the order is seen
    for got, want in zip(joined, expected, strict=True):
        np.testing.assert_array_equal(
            got["continuous_observations"], want["continuous_observations"]
        )
    with pytest.raises(ValueError, match="holds 3 episodes"):
        control_learning.load_data(f"{first}@4", task)
    with pytest.raises(ValueError, match="must be an int"):
        control_learning.load_data(f"{first}@two", task)
    with pytest.raises(FileNotFoundError, match="no episodes at"):
        control_learning.load_data(str(tmp_path / "none"), task)


def test_atari_clones_are_scored_under_the_protocol_asked(tmp_path, monkeypatch):
    """`atari_protocol`/`atari_options` reach the adapters the clone is scored in; on a task
    of another suite they are refused before any training."""
    from types import SimpleNamespace

    from gato.tasks.registry import get_task

    made = []

    def fake_env(task, **overrides):
        made.append(overrides)
        return SimpleNamespace(close=lambda: None)

    def fake_episodes(actor, envs, episodes, seed, max_steps=None):
        return SimpleNamespace(returns=np.zeros(episodes))

    monkeypatch.setattr(control_learning, "make_env", fake_env)
    monkeypatch.setattr(control_learning, "run_episodes", fake_episodes)
    pong = get_task("atari-pong")
    actor = SimpleNamespace(num_envs=2)
    config = control_learning.BenchConfig(task="atari-pong", eval_episodes=2)
    control_learning.score(pong, actor, config)
    assert made == [{}, {}]  # as the data was collected
    made.clear()
    sticky = control_learning.BenchConfig(
        task="atari-pong", eval_episodes=2, atari_protocol="sticky", atari_options=("noop_max=5",)
    )
    control_learning.score(pong, actor, sticky)
    assert [m["repeat_action_probability"] for m in made] == [0.25, 0.25]
    assert [m["noop_max"] for m in made] == [5, 5]
    data = _collect(tmp_path, "gym-cartpole", 2)
    with pytest.raises(ValueError, match="'gym-cartpole' is a gym task, not Atari"):
        control_learning.run(_config(data, "gym-cartpole", "mlp", atari_protocol="sticky"))


def test_image_windows_tokenize_as_the_whole_episode_does():
    """A window tokenized when drawn equals the same steps cut from the episode tokenized whole:
    the frames, the actions and the layout."""
    from gato.tokens.tokenizer import GatoTokenizer
    from gato.tokens.windows import take_steps

    rng = np.random.default_rng(2)
    episodes = [
        {
            "image_observations": _stacks(rng.integers(0, 256, (n, 84, 84), dtype=np.uint8)),
            "discrete_actions": rng.integers(0, 6, n).astype(np.int64),
            "rewards": rng.normal(size=n).astype(np.float32),
        }
        for n in (5, 3)
    ]
    tokenizer = GatoTokenizer()
    windows = control_learning.ImageWindows(episodes, tokenizer)
    np.testing.assert_array_equal(windows.lengths, [5, 3])
    cuts = [(0, 0, 1), (0, 2, 5), (1, 1, 3), (1, 0, 3)]
    # A batch's windows tokenized in one call (`many`) come out as each alone.
    together = windows.many(cuts)
    assert len(together) == len(cuts)
    for (episode, first, stop), drawn in zip(cuts, together, strict=True):
        whole = take_steps(tokenizer.encode_jat_episode(episodes[episode]), first, stop)
        for got in (windows(episode, first, stop), drawn):
            for name in ("ids", "local_positions", "loss_mask", "patches", "patch_positions",
                         "timestep_starts"):  # fmt: skip
                np.testing.assert_array_equal(getattr(got, name), getattr(whole, name), name)
    with pytest.raises(IndexError, match="steps 2..4 of episode 1"):
        windows(1, 2, 4)
    with pytest.raises(IndexError, match="steps 2..4 of episode 1"):
        windows.many([(0, 0, 2), (1, 2, 4)])
    short = [{**episodes[0], "rewards": episodes[0]["rewards"][:4]}]
    with pytest.raises(ValueError, match="5 frame stacks but 4 rewards"):
        control_learning.ImageWindows(short, tokenizer)


@pytest.mark.parametrize(
    "learner",
    [
        "gato:table:1:patch=linear",
        "gato:table:1:psize=84:patch=nature",
        "gato:table:1:frame=5:fdiff=1",
    ],
)
def test_gato_trains_on_pong_frames_and_plays_pong(tmp_path, learner):
    """16-pixel patches; a whole frame a token (`psize=84`: the tokenizer's patch size follows
    the model's, or the model would be handed patches it cannot embed); the frame's 25 patches
    one position, read with their differences (`frame=5:fdiff=1`)."""
    data = _collect(tmp_path, "atari-pong", 1, policy="random")
    config = _config(data, "atari-pong", learner, steps=(2, 4), batch_timesteps=8,
                     eval_episodes=1)  # fmt: skip
    (curve,) = control_learning.run(config)
    assert curve.learner == learner and curve.steps == [2, 4]
    assert all(math.isfinite(s) for s in curve.scores + curve.losses)


def _constant_action_episodes(rng, action: int, lengths) -> list[dict]:
    return [
        {
            "image_observations": _stacks(rng.integers(0, 256, (n, 84, 84), dtype=np.uint8)),
            "discrete_actions": np.full(n, action, dtype=np.int64),
            "rewards": np.zeros(n, dtype=np.float32),
        }
        for n in lengths
    ]


@pytest.mark.parametrize("learner", ["cnn:prev=2:shift=2", "gato:table:1:frame=5"])
def test_held_out_batches_are_drawn_from_the_held_out_episodes(learner):
    """Trained on episodes whose action is always 0, a learner's loss on held-out episodes
    whose action is always 3 is high where its training loss is low: `batch(rng,
    held_out=True)` draws from those episodes alone; refused without them."""
    rng = np.random.default_rng(0)
    train, held = _constant_action_episodes(rng, 0, (6, 5)), _constant_action_episodes(rng, 3, (4,))
    task = control_learning.get_task("atari-pong")
    config = control_learning.BenchConfig(task="atari-pong", batch_timesteps=4, width=32, layers=1)
    if learner.startswith("cnn"):
        model, batch, *_ = control_learning.discrete_learner(learner, task, train, config, held)
        _, alone, *_ = control_learning.discrete_learner(learner, task, train, config)
    else:
        model, batch, *_ = control_learning.gato_learner(task, train, learner, config, held)
        _, alone, *_ = control_learning.gato_learner(task, train, learner, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = batch(rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        trained_on, held_out = float(batch(rng)), float(batch(rng, held_out=True))
    assert trained_on < 0.2 < 2.0 < held_out
    with pytest.raises(ValueError, match="needs held-out episodes"):
        alone(rng, held_out=True)
