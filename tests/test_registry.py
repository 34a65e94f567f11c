"""The task registry: loading, suite defaults, specs, errors, writing scores, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gato.data.__main__ import main
from gato.data.registry import (
    DEFAULT_REGISTRY_PATH,
    Scores,
    UnknownTaskError,
    get_task,
    load_registry,
    parse_registry,
    write_scores,
)
from gato.tokenizer import ActionSpec

MINIMAL = """
[suites.gym]
episode_limit = 1000

[tasks.gym-cartpole]
suite = "gym"
env = { id = "CartPole-v1" }
observation = { continuous_observations = { shape = [4] } }
action = { kind = "discrete", num_values = 2 }
episode_limit = 500
expert = "cartpole-pd"
"""


def test_shipped_registry_covers_the_suites():
    registry = load_registry()
    suites = [t.suite for t in registry.values()]
    assert len(registry) >= 12
    assert suites.count("atari") >= 2 and suites.count("dmc") >= 4 and "gym" in suites
    from gato.data.experts import EXPERTS

    for task in registry.values():
        assert task.expert in EXPERTS, task.id
        assert task.scores is not None, f"{task.id}: run `python -m gato.data score`"
        assert task.scores.expert > task.scores.random, task.id
        assert task.observation_columns, task.id


def test_suite_defaults_and_specs():
    pong = get_task("atari-pong")
    assert pong.episode_limit == 27000
    assert pong.observation["image_observations"].shape == (84, 84, 4)
    assert pong.observation["image_observations"].dtype == "uint8"
    assert pong.env["frame_skip"] == 4 and pong.env["full_action_space"] is False
    assert pong.action_spec() == ActionSpec("discrete", (), num_values=6)
    assert pong.columns == ("image_observations", "discrete_actions", "rewards")

    cartpole = get_task("dmc-cartpole-swingup")
    assert cartpole.action_spec() == ActionSpec("continuous", (1,))
    assert cartpole.observation["continuous_observations"].shape == (5,)
    assert (
        cartpole.dataset_path
        == DEFAULT_REGISTRY_PATH.parent / "cache/episodes/dmc-cartpole-swingup"
    )


def test_unknown_task_lists_known_ids_and_suggests():
    with pytest.raises(UnknownTaskError) as err:
        get_task("atari-pongg")
    message = str(err.value)
    assert "did you mean 'atari-pong'" in message
    assert "dmc-cartpole-swingup" in message and "gym-pendulum" in message


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda t: t.replace('expert = "cartpole-pd"', 'expert = "x"\ncolour = "red"'),
            "unknown keys",
        ),
        (lambda t: t.replace('suite = "gym"\n', 'suite = "nes"\n'), "unknown suite 'nes'"),
        (lambda t: t.replace('kind = "discrete"', 'kind = "analog"'), "action.kind"),
        (lambda t: t.replace("shape = [4]", "shape = [-4]"), "positive integers"),
        (lambda t: t.replace("shape = [4]", "shape = [2, 2]"), "rank"),
        (lambda t: t.replace("num_values = 2", "num_values = 5000"), "num_values"),
        (lambda t: t.replace("episode_limit = 500", "episode_limit = 0"), "episode_limit"),
        (
            lambda t: t.replace("continuous_observations = { shape", "pixels = { shape"),
            "unknown observation column",
        ),
    ],  # fmt: skip
)
def test_bad_entries_are_rejected(edit, match):
    parse_registry(MINIMAL)  # the unedited text is fine
    with pytest.raises(ValueError, match=match):
        parse_registry(edit(MINIMAL))


def test_write_scores_replaces_or_inserts_one_line(tmp_path):
    second = MINIMAL.split("[tasks.gym-cartpole]")[1]
    original = MINIMAL + "\n# --- another section\n\n[tasks.gym-cartpole-copy]" + second
    path = tmp_path / "tasks.toml"
    path.write_text(original)
    write_scores(path, "gym-cartpole", Scores(500.0, 22.5, 100, 100))
    registry = load_registry(path)
    assert registry["gym-cartpole"].scores == Scores(500.0, 22.5, 100, 100)
    assert registry["gym-cartpole-copy"].scores is None  # written into the right table
    write_scores(path, "gym-cartpole", Scores(499.0, 20.0, 10, 100))  # replaced, not added
    lines = path.read_text().splitlines(keepends=True)
    assert sum(line.startswith("scores =") for line in lines) == 1
    # Inside its table: before the comment that opens the next section.
    assert lines.index("# --- another section\n") - 2 == next(
        i for i, line in enumerate(lines) if line.startswith("scores =")
    )
    assert "".join(line for line in lines if not line.startswith("scores =")) == original
    assert load_registry(path)["gym-cartpole"].scores.expert == 499.0
    with pytest.raises(UnknownTaskError):
        write_scores(path, "missing", Scores(1.0, 0.0))


def test_registry_reloads_when_the_file_changes(tmp_path):
    path = tmp_path / "tasks.toml"
    shutil.copy(DEFAULT_REGISTRY_PATH, path)
    first = load_registry(path)
    write_scores(path, "gym-cartpole", Scores(123.0, 4.0, 1, 1))
    assert load_registry(path)["gym-cartpole"].scores.expert == 123.0
    assert first is not load_registry(path)
    assert Path(load_registry(path).path) == path.resolve()


def test_cli_tasks_table(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "atari-pong" in out and "expert score" in out and "random score" in out
    assert main(["tasks", "--suite", "dmc", "--json"]) == 0
    assert '"suite": "dmc"' in capsys.readouterr().out


def test_cli_unknown_task_is_a_clear_error(capsys):
    assert main(["score", "--task", "gym-cartpol", "--expert-episodes", "1"]) == 2
    assert "did you mean 'gym-cartpole'" in capsys.readouterr().err
