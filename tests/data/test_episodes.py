"""Loading episodes in the JAT schema: fixtures in the hub's exact features, and bad datasets."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from gato.data import EpisodeSchemaError, episode_returns, load_episodes
from gato.data.episodes import encode_png, episode_features, episode_record_batch
from gato.tokens.tokenizer import GatoTokenizer

ATARI_FEATURES = datasets.Features(
    {
        "image_observations": datasets.Sequence(datasets.Image()),
        "rewards": datasets.Sequence(datasets.Value("float32")),
        "discrete_actions": datasets.Sequence(datasets.Value("int64")),
    }
)
MUJOCO_FEATURES = datasets.Features(
    {
        "continuous_observations": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
        "continuous_actions": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
        "rewards": datasets.Sequence(datasets.Value("float32")),
    }
)
BABYAI_FEATURES = datasets.Features(
    {
        "text_observations": datasets.Sequence(datasets.Value("string")),
        "discrete_observations": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
        "discrete_actions": datasets.Sequence(datasets.Value("int64")),
        "rewards": datasets.Sequence(datasets.Value("float32")),
    }
)


def _atari_rows(rng, lengths=(5, 3)):
    """4-frame stacks as the hub stores them: RGBA images, one frame per channel."""
    from PIL import Image

    def stack():
        return Image.fromarray(rng.integers(0, 256, (84, 84, 4), dtype=np.uint8), "RGBA")

    return {
        "image_observations": [[stack() for _ in range(t)] for t in lengths],
        "rewards": [[0.0] * (t - 1) + [1.0] for t in lengths],
        "discrete_actions": [rng.integers(0, 6, t).tolist() for t in lengths],
    }


def _hub_layout(tmp_path, rows, features, config="atari-pong"):
    """Parquet files laid out as on the hub: <config>/<split>/0000.parquet."""
    for split in ("train", "test"):
        folder = tmp_path / config / split
        folder.mkdir(parents=True)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "0000.parquet"))
    return tmp_path / config


def test_atari_fixture_from_parquet_loads_as_uint8_stacks(tmp_path):
    rng = np.random.default_rng(0)
    rows = _atari_rows(rng)
    source = _hub_layout(tmp_path, rows, ATARI_FEATURES)
    episodes = load_episodes(source, split="train")
    assert len(episodes) == 2
    first = episodes[0]
    assert first["image_observations"].shape == (5, 84, 84, 4)
    assert first["image_observations"].dtype == np.uint8
    expected = np.asarray(rows["image_observations"][0][2])
    np.testing.assert_array_equal(first["image_observations"][2], expected)
    assert first["discrete_actions"].dtype == np.int64
    assert first["rewards"].dtype == np.float32
    np.testing.assert_allclose(episode_returns(episodes), [1.0, 1.0])
    # The tokenizer takes a loaded row as it is.
    sequence = GatoTokenizer().encode_jat_episode(first)
    assert sequence.patches.shape[0] == 5 * 25  # 84x84 -> 80x80 -> 25 patches per step


def test_mujoco_and_babyai_fixtures(tmp_path):
    rng = np.random.default_rng(1)
    mujoco = {
        "continuous_observations": [rng.normal(size=(4, 11)).astype(np.float32).tolist()],
        "continuous_actions": [rng.uniform(-1, 1, (4, 3)).astype(np.float32).tolist()],
        "rewards": [[0.5] * 4],
    }
    path = tmp_path / "mujoco.parquet"
    datasets.Dataset.from_dict(mujoco, features=MUJOCO_FEATURES).to_parquet(str(path))
    row = load_episodes(path)[0]
    assert row["continuous_observations"].shape == (4, 11)
    assert row["continuous_actions"].dtype == np.float32

    babyai = {
        "text_observations": [["go to the red ball"] * 3],
        "discrete_observations": [rng.integers(0, 10, (3, 148)).tolist()],
        "discrete_actions": [[0, 2, 1]],
        "rewards": [[0.0, 0.0, 0.9]],
    }
    folder = tmp_path / "babyai"
    datasets.Dataset.from_dict(babyai, features=BABYAI_FEATURES).save_to_disk(str(folder))
    row = load_episodes(folder)[0]
    assert list(row["text_observations"]) == ["go to the red ball"] * 3
    assert row["discrete_observations"].shape == (3, 148)


def test_hub_ids_go_through_load_dataset(tmp_path, monkeypatch):
    rows = _atari_rows(np.random.default_rng(2), lengths=(2,))
    fixture = datasets.Dataset.from_dict(rows, features=ATARI_FEATURES)
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return fixture

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    episodes = load_episodes("jat-project/jat-dataset", split="test", name="atari-pong")
    assert calls == [("jat-project/jat-dataset", "atari-pong", "test")]
    assert episodes[0]["image_observations"].shape == (2, 84, 84, 4)


def _save(tmp_path, rows, features=None, name="ds"):
    path = tmp_path / name
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(path))
    return path


def test_missing_columns_are_listed(tmp_path):
    path = _save(tmp_path, {"rewards": [[1.0]], "discrete_actions": [[0]]})
    with pytest.raises(EpisodeSchemaError, match="no observation column"):
        load_episodes(path)
    path = _save(tmp_path, {"continuous_observations": [[[1.0]]], "rewards": [[1.0]]}, name="b")
    with pytest.raises(EpisodeSchemaError, match="exactly one action column"):
        load_episodes(path)
    path = _save(tmp_path, {"continuous_observations": [[[1.0]]], "discrete_actions": [[0]]},
                 name="c")  # fmt: skip
    with pytest.raises(EpisodeSchemaError, match=r"missing required columns \['rewards'\]"):
        load_episodes(path)


def test_task_columns_and_widths_are_required(tmp_path):
    rows = {
        "continuous_observations": [[[0.0] * 3] * 2],
        "discrete_actions": [[0, 1]],
        "rewards": [[1.0, 1.0]],
    }
    path = _save(tmp_path, rows)
    with pytest.raises(EpisodeSchemaError, match=r"3 values per step but task 'gym-cartpole'"):
        load_episodes(path, task="gym-cartpole")
    with pytest.raises(EpisodeSchemaError, match=r"missing required columns \['image_obs"):
        load_episodes(path, task="atari-pong")


def test_ragged_steps_are_rejected_with_the_episode(tmp_path):
    rows = {
        "continuous_observations": [[[0.0, 1.0]] * 3, [[0.0, 1.0]] * 4],
        "continuous_actions": [[[0.5]] * 3, [[0.5]] * 3],
        "rewards": [[1.0] * 3, [1.0] * 4],
    }
    with pytest.raises(
        EpisodeSchemaError, match=r"episode 1: ragged steps: 'continuous_actions' has 3"
    ):
        load_episodes(_save(tmp_path, rows))


def test_ragged_vectors_are_rejected(tmp_path):
    rows = {
        "continuous_observations": [[[0.0, 1.0]] * 2, [[0.0, 1.0], [0.0, 1.0, 2.0]]],
        "continuous_actions": [[[0.5]] * 2, [[0.5]] * 2],
        "rewards": [[1.0] * 2, [1.0] * 2],
    }
    with pytest.raises(EpisodeSchemaError, match=r"episode 1: ragged 'continuous_observations'"):
        load_episodes(_save(tmp_path, rows))


def test_wrong_types_missing_values_and_empty_episodes(tmp_path):
    rows = {"continuous_observations": [[[0.0]]], "discrete_actions": [[0]], "rewards": [["a"]]}
    with pytest.raises(EpisodeSchemaError, match="'rewards' has the wrong type"):
        load_episodes(_save(tmp_path, rows))
    rows = {"continuous_observations": [[[0.0]], None], "discrete_actions": [[0], [0]],
            "rewards": [[0.0], [0.0]]}  # fmt: skip
    with pytest.raises(
        EpisodeSchemaError, match="episode 1: column 'continuous_observations' is missing"
    ):
        load_episodes(_save(tmp_path, rows, name="b"))
    rows = {"continuous_observations": [[]], "discrete_actions": [[]], "rewards": [[]]}
    features = episode_features(rows)
    with pytest.raises(EpisodeSchemaError, match="episode 0 has no steps"):
        load_episodes(_save(tmp_path, rows, features, name="c"))


def test_record_batch_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (4, 84, 84, 4), dtype=np.uint8)
    episode = {
        "image_observations": [encode_png(f) for f in frames],
        "discrete_actions": [1, 0, 3, 2],
        "rewards": [0.0, 1.0, 0.0, 2.5],
    }
    features = episode_features(episode)
    batch = episode_record_batch(episode, features)
    import pyarrow as pa

    table = pa.Table.from_batches([batch, batch])
    path = tmp_path / "ds"
    datasets.Dataset(table).save_to_disk(str(path))
    loaded = load_episodes(path)
    np.testing.assert_array_equal(loaded[1]["image_observations"], frames)
    np.testing.assert_array_equal(loaded[0]["discrete_actions"], [1, 0, 3, 2])
    np.testing.assert_allclose(episode_returns(loaded), [3.5, 3.5])
    with pytest.raises(EpisodeSchemaError, match="disagree on the number of steps"):
        episode_record_batch({**episode, "rewards": [0.0]}, features)


@pytest.mark.parametrize("shape", [(84, 84), (84, 84, 1), (64, 48, 3), (84, 84, 4)])
def test_png_round_trip(shape):
    from io import BytesIO

    from PIL import Image

    image = np.random.default_rng(4).integers(0, 256, shape, dtype=np.uint8)
    decoded = np.asarray(Image.open(BytesIO(encode_png(image))))
    np.testing.assert_array_equal(decoded, image.reshape(decoded.shape))
    with pytest.raises(ValueError):
        encode_png(image.astype(np.float32))
