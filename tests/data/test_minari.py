"""Minari both ways: datasets made by minari's own DataCollector read as our episodes, ours
exported and read back, all offline in a temporary Minari root."""

from __future__ import annotations

import json

import datasets
import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip("minari")
pytest.importorskip("jax")  # minari's DataCollector needs it (minari[create])

from gato.data.action_scale import with_action_scale  # noqa: E402
from gato.data.episodes import load_episodes  # noqa: E402
from gato.data.minari import export_minari, import_minari, main, read_minari  # noqa: E402
from gato.data.sources import ControlSource  # noqa: E402
from gato.tokens.tokenizer import GatoTokenizer  # noqa: E402


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    datasets.disable_progress_bars()
    yield root
    datasets.enable_progress_bars()


def _collect(env_id: str, dataset_id: str, episodes: int, max_steps: int | None = None):
    """Random episodes recorded by minari's DataCollector."""
    kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
    env = minari.DataCollector(gym.make(env_id, **kwargs))
    env.action_space.seed(0)
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    with pytest.warns(UserWarning):  # minari warns that no eval_env was given
        return env.create_dataset(dataset_id=dataset_id, algorithm_name="random")


def test_a_minari_pendulum_dataset_reads_as_gym_pendulum_episodes():
    source = _collect("Pendulum-v1", "test/pendulum/random-v0", episodes=2, max_steps=15)
    dataset = read_minari("test/pendulum/random-v0", "gym-pendulum")
    assert len(dataset) == 2
    for row, episode in zip(dataset, source.iterate_episodes(), strict=True):
        # T + 1 observations in Minari, T here; actions kept on Pendulum's own [-2, 2] scale.
        np.testing.assert_array_equal(row["continuous_observations"], episode.observations[:-1])
        np.testing.assert_array_equal(row["continuous_actions"], episode.actions)
        np.testing.assert_array_equal(row["rewards"], episode.rewards.astype(np.float32))
        assert row["truncated"] and not row["terminated"]  # cut by the 15-step limit
    meta = json.loads(dataset.info.description)
    assert meta["action_scale"] == "raw" and meta["minari_id"] == "test/pendulum/random-v0"
    # Tokenized by the task's bounds: the same tokens as the actions on [-1, 1].
    tokenizer = GatoTokenizer()
    (tokens,) = list(
        ControlSource("gym-pendulum", "unused").tokenize(dataset.select([0]), tokenizer)
    )
    row = dataset[0]
    unit = tokenizer.encode_episode(
        {"continuous_observations": row["continuous_observations"]},
        {"continuous_actions": row["continuous_actions"] / 2.0},
    )
    np.testing.assert_array_equal(tokens.ids, unit.ids)


def test_a_minari_cartpole_dataset_by_path_keeps_terminations(minari_root, tmp_path):
    _collect("CartPole-v1", "cartpole-random-v0", episodes=3)
    output = import_minari(minari_root / "cartpole-random-v0", "gym-cartpole", tmp_path / "out")
    dataset = load_episodes(output, task="gym-cartpole")  # our loader reads the import
    assert len(dataset) == 3
    ends = dataset.with_format(None)
    assert all(ends["terminated"]) and not any(ends["truncated"])  # the pole fell
    actions = np.concatenate([row["discrete_actions"] for row in dataset])
    assert set(actions.tolist()) <= {0, 1} and actions.dtype == np.int64


def test_spaces_that_do_not_match_the_task_are_refused(minari_root):
    _collect("CartPole-v1", "cartpole-random-v0", episodes=1)
    with pytest.raises(
        ValueError, match=r"plays continuous actions of shape \(1,\).*Discrete\(2\)"
    ):
        read_minari("cartpole-random-v0", "gym-pendulum")
    with pytest.raises(ValueError, match=r"trained on 3 discrete actions.*Discrete\(2\)"):
        read_minari("cartpole-random-v0", "gym-acrobot")
    with pytest.raises(FileNotFoundError, match=r"not in the local Minari root .*cartpole-random"):
        read_minari("no-such-dataset-v0", "gym-cartpole")


def _our_pendulum_dataset(lengths=(5, 200)):
    """Episodes as our collection records them: unit-scale actions, no end columns."""
    rng = np.random.default_rng(0)
    rows = {
        "continuous_observations": [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths],
        "continuous_actions": [rng.uniform(-1, 1, (n, 1)).astype(np.float32) for n in lengths],
        "rewards": [rng.normal(size=n).astype(np.float32) for n in lengths],
    }
    dataset = datasets.Dataset.from_dict(rows)
    dataset.info.description = json.dumps({"created_by": "python -m gato.data collect"})
    return with_action_scale(dataset, "unit").with_format("numpy")


def test_export_writes_environment_scale_actions_and_reads_back(minari_root):
    ours = _our_pendulum_dataset()
    exported = export_minari(ours, "gym-pendulum", "gato/pendulum/expert-v0")
    again = minari.load_dataset("gato/pendulum/expert-v0")  # minari itself reads it
    assert again.total_episodes == 2 and exported.total_steps == 205
    assert again.action_space == gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert again.spec.env_spec.id == "Pendulum-v1"
    for row, episode in zip(ours, again.iterate_episodes(), strict=True):
        np.testing.assert_allclose(episode.actions, 2.0 * row["continuous_actions"], rtol=1e-6)
        assert episode.observations.shape == (len(row["rewards"]) + 1, 3)
        np.testing.assert_array_equal(episode.observations[-1], episode.observations[-2])
    # Ends from the length: 5 < 200 steps terminated, 200 (the limit) truncated.
    first, second = list(again.iterate_episodes())
    assert first.terminations[-1] and not first.truncations[-1]
    assert second.truncations[-1] and not second.terminations[-1]
    # Read back: the same tokens as the original unit-scale episodes.
    tokenizer = GatoTokenizer()
    source = ControlSource("gym-pendulum", "unused")
    back = read_minari("gato/pendulum/expert-v0", "gym-pendulum")
    for a, b in zip(
        source.tokenize(back, tokenizer), source.tokenize(ours, tokenizer), strict=True
    ):
        np.testing.assert_array_equal(a.ids, b.ids)


def test_export_replaces_only_when_asked(minari_root):
    export_minari(_our_pendulum_dataset((4, 6)), "gym-pendulum", "gato-pendulum-v0")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        export_minari(_our_pendulum_dataset((3,)), "gym-pendulum", "gato-pendulum-v0")
    assert minari.load_dataset("gato-pendulum-v0").total_episodes == 2  # untouched
    export_minari(_our_pendulum_dataset((3,)), "gym-pendulum", "gato-pendulum-v0", overwrite=True)
    assert minari.load_dataset("gato-pendulum-v0").total_episodes == 1
    assert [p.name for p in minari_root.iterdir() if p.name.startswith(".")] == []  # no debris


def test_the_command_line(minari_root, tmp_path, capsys):
    ours = tmp_path / "ours"
    _our_pendulum_dataset((4,)).save_to_disk(str(ours))
    assert main(["export", str(ours), "--task", "gym-pendulum", "--dataset_id", "p-v0"]) == 0
    out = tmp_path / "back"
    assert main(["import", "p-v0", "--task", "gym-pendulum", "--output", str(out)]) == 0
    assert len(load_episodes(out, task="gym-pendulum")) == 1
    assert main(["import", "nothing-v0", "--task", "gym-pendulum", "--output", str(out)]) == 2
    assert "no Minari dataset 'nothing-v0'" in capsys.readouterr().err


def test_a_minari_babyai_dataset_goes_through_the_adapters_conversion():
    pytest.importorskip("minigrid")
    import minigrid  # noqa: F401  registers the BabyAI ids

    base = gym.make("BabyAI-GoToRedBall-v0", max_episode_steps=6)
    # minari cannot store minigrid's MissionSpace: the mission as a Text space, as minari's own
    # minigrid datasets do.
    text = gym.spaces.Text(max_length=200, charset=" abcdefghijklmnopqrstuvwxyz,")
    space = gym.spaces.Dict(
        {
            "direction": gym.spaces.Discrete(4),
            "image": base.observation_space["image"],
            "mission": text,
        }
    )
    env = minari.DataCollector(base, observation_space=space, data_format="arrow")
    env.action_space.seed(0)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    with pytest.warns(UserWarning):
        source = env.create_dataset(dataset_id="babyai-random-v0", algorithm_name="random")
    (row,) = read_minari("babyai-random-v0", "babyai-go-to-red-ball")
    (episode,) = source.iterate_episodes()
    steps = len(episode.rewards)
    assert list(row["text_observations"]) == list(episode.observations["mission"][:steps])
    expected = np.concatenate(
        [episode.observations["direction"][:steps, None],
         episode.observations["image"][:steps].reshape(steps, -1)], axis=1
    )  # fmt: skip
    np.testing.assert_array_equal(row["discrete_observations"], expected)  # the JAT layout
    np.testing.assert_array_equal(row["discrete_actions"], episode.actions)


# ---------------------------------------------------------------------------------------------
# A Minari dataset as a recipe source
# ---------------------------------------------------------------------------------------------


def _recipe(task: str, path: str):
    from gato.data.mixture import parse_recipe, resolve_recipe

    entry = {"task": task, "weight": 1.0, "path": path}
    return resolve_recipe(parse_recipe({"name": "minari", "sources": [entry]}))


def test_a_recipe_reads_a_minari_dataset_by_id_or_folder(minari_root, tmp_path):
    from gato.data.minari_source import MinariSource
    from gato.data.mixture import Mixture, MixtureConfig, StreamingMixture

    _collect("Pendulum-v1", "test/pendulum/random-v0", episodes=3, max_steps=12)
    by_id = _recipe("gym-pendulum", "minari:test/pendulum/random-v0")
    (source,) = by_id.sources
    assert isinstance(source, MinariSource) and not source.is_missing()
    folder = minari_root / "test" / "pendulum" / "random-v0"
    (by_folder,) = _recipe("gym-pendulum", str(folder)).sources
    assert isinstance(by_folder, MinariSource)
    assert by_folder.located().path == source.located().path  # the same data folder

    dataset = source.located().load()
    assert len(dataset) == 3 and json.loads(dataset.info.description)["action_scale"] == "raw"
    # The token cache of an unchanged Minari dataset is reused, not rebuilt every run.
    config = MixtureConfig(context_length=64, batch_size=2, cache_root=str(tmp_path / "cache"))
    first = Mixture(by_id, config).caches[0].path
    assert Mixture(by_id, config).caches[0].path == first
    # Streamed too: raw [-2, 2] actions tokenized on the task's bounds, as the cache has them.
    streamed = StreamingMixture.from_recipe(by_id, config).loader()
    batch = next(streamed).batch
    assert batch.input_ids.shape == (2, 64) and batch.loss_mask.any()
    (whole,) = list(source.tokenize(dataset.select([0]), GatoTokenizer()))
    assert len(whole) <= 64  # episode 0 is the first window, whole
    length = int(batch.attention_mask[0].sum())
    np.testing.assert_array_equal(batch.input_ids[0, :length].numpy(), whole.ids)


def test_a_minari_source_that_is_wrong_names_the_dataset(minari_root):
    with pytest.raises(FileNotFoundError, match=r"source 'gym-pendulum': no Minari dataset "
                       r"'test/no-such-v0'.*local datasets: none"):  # fmt: skip
        _recipe("gym-pendulum", "minari:test/no-such-v0").located()
    _collect("CartPole-v1", "cartpole-random-v0", episodes=1)
    wrong = _recipe("gym-pendulum", "minari:cartpole-random-v0").sources[0].located()
    with pytest.raises(ValueError, match=r"source 'gym-pendulum': Minari dataset "
                       r"'.*cartpole-random-v0.*'.*gym-pendulum"):  # fmt: skip
        wrong.load()
    with pytest.raises(ValueError, match="'my-pendulum'.*needs a registry task"):
        _recipe("my-pendulum", "minari:cartpole-random-v0").located()
