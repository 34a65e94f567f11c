"""The task registry: loading, suite defaults, specs, errors, writing scores, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gato.data.__main__ import main
from gato.schema import ActionSpec
from gato.tasks.registry import (
    DEFAULT_REGISTRY_PATH,
    Reference,
    Scores,
    UnknownTaskError,
    get_task,
    load_registry,
    parse_registry,
    write_scores,
)

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
    assert len(registry) >= 150
    assert suites.count("atari") == 57 and suites.count("dmc") >= 50 and "gym" in suites
    from gato.tasks.experts import EXPERTS

    for task in registry.values():
        assert task.observation_columns, task.id
        if task.expert is None:
            # Without an expert a task names where its episodes come from, or has none yet.
            assert task.scores is None, task.id
            continue
        assert task.expert in EXPERTS, task.id
        assert task.scores is not None, f"{task.id}: run `python -m gato.data score`"
        assert task.scores.expert > task.scores.random, task.id
        assert task.scores.expert_episodes >= 5 and task.scores.random_episodes >= 5, task.id


def test_suite_defaults_and_specs():
    assert get_task("atari-breakout").episode_limit == 27000  # the suite's: ALE v5's 108,000 frames
    pong = get_task("atari-pong")
    # Pong's own: its games end before the console's score reset at frame 65,212 (tests/tasks/
    # test_envs.py::test_pong_games_end_before_the_consoles_score_reset).
    assert pong.episode_limit == 16000
    assert pong.observation["image_observations"].shape == (84, 84, 4)
    assert pong.observation["image_observations"].dtype == "uint8"
    assert pong.env["frame_skip"] == 4 and pong.env["full_action_space"] is False
    assert pong.action == ActionSpec("discrete", (), num_values=6)
    assert pong.columns == ("image_observations", "discrete_actions", "rewards")

    cartpole = get_task("dmc-cartpole-swingup")
    assert cartpole.action == ActionSpec("continuous", (1,))
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


def test_the_filter_key_defaults_to_on():
    assert parse_registry(MINIMAL)["gym-cartpole"].filter is True
    edited = MINIMAL.replace("episode_limit = 500", "episode_limit = 500\nfilter = false")
    assert parse_registry(edited)["gym-cartpole"].filter is False


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
            lambda t: t.replace("episode_limit = 500", 'episode_limit = 500\nfilter = "no"'),
            "filter must be true or false, got 'no'",
        ),
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
    shutil.copytree(DEFAULT_REGISTRY_PATH.parent / "tasks", tmp_path / "tasks")
    first = load_registry(path)
    write_scores(path, "gym-cartpole", Scores(123.0, 4.0, 1, 1))
    assert load_registry(path)["gym-cartpole"].scores.expert == 123.0
    assert first is not load_registry(path)
    assert Path(load_registry(path).path) == path.resolve()


def test_cli_tasks_table(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "atari-pong" in out and "expert score" in out and "random score" in out
    assert "offline" in out and "human" in out and "babyai-boss-level" in out
    assert main(["tasks", "--suite", "dmc", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["suite"] for r in rows} == {"dmc"} and len(rows) == len(
        load_registry().by_suite("dmc")
    )
    pendulum = next(r for r in rows if r["id"] == "dmc-pendulum-swingup")
    assert pendulum["offline_expert"] and pendulum["expert_score"] > pendulum["random_score"]
    walker = next(r for r in rows if r["id"] == "dmc-walker-walk")
    assert not walker["offline_expert"] and walker["expert_score"] is None
    # Atari games without a measured score show the published random score, marked.
    assert main(["tasks", "--suite", "atari"]) == 0
    out = capsys.readouterr().out
    alien = next(line for line in out.splitlines() if line.startswith("atari-alien "))
    assert "227.8*" in alien and "7127.7" in alien and "published random score" in out
    assert "atari: 57 tasks, 2 with an offline expert" in out


def test_cli_tasks_unknown_suite(capsys):
    assert main(["tasks", "--suite", "nes"]) == 2
    err = capsys.readouterr().err
    assert "unknown suites ['nes']" in err and "babyai" in err and "metaworld" in err


INCLUDED = """
[tasks.gym-cartpole-b]
suite = "gym"
env = { id = "CartPole-v1" }
observation = { continuous_observations = { shape = [4] } }
action = { kind = "discrete", num_values = 2 }
expert = "cartpole-pd"
"""


def test_included_files_join_the_registry(tmp_path):
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.toml").write_text(INCLUDED)
    root = tmp_path / "tasks.toml"
    root.write_text('include = ["more/b.toml"]\n' + MINIMAL)
    registry = load_registry(root)
    assert list(registry) == ["gym-cartpole", "gym-cartpole-b"]  # root first, then includes
    assert registry["gym-cartpole-b"].episode_limit == 1000  # the root's suite defaults
    assert registry["gym-cartpole-b"].source == (tmp_path / "more" / "b.toml").resolve()
    assert registry["gym-cartpole"].source == root.resolve()
    # Scores go into the file that declares the task; the root stays as it was.
    before = root.read_text()
    write_scores(root, "gym-cartpole-b", Scores(500.0, 20.0, 5, 5))
    assert root.read_text() == before
    assert "scores = { expert = 500" in (tmp_path / "more" / "b.toml").read_text()
    assert load_registry(root)["gym-cartpole-b"].scores == Scores(500.0, 20.0, 5, 5)


@pytest.mark.parametrize(
    ("root_text", "included", "match"),
    [
        ('include = ["more/b.toml"]\n', INCLUDED.replace("cartpole-b", "cartpole"), "already"),
        ('include = ["more/missing.toml"]\n', INCLUDED, "does not exist"),
        ('include = ["more/b.toml", "more/b.toml"]\n', INCLUDED, "included twice"),
        ('include = "more/b.toml"\n', INCLUDED, "list of file paths"),
        ('include = ["more/b.toml"]\n', "[suites.gym]\nepisode_limit = 5\n", "defined twice"),
        ('include = ["more/b.toml"]\n', INCLUDED.replace('suite = "gym"', "suite = ["), "TOML"),
    ],
)
def test_bad_includes_are_rejected(tmp_path, root_text, included, match):
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.toml").write_text(included)
    root = tmp_path / "tasks.toml"
    root.write_text(root_text + MINIMAL)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_registry(root)


def test_reference_scores_and_offline_experts(tmp_path):
    text = MINIMAL.replace(
        'expert = "cartpole-pd"',
        'expert = "impala"\nexpert_params = { checkpoint = "ckpt/cartpole" }\n'
        'reference = { random = 1.5, human = 30.0, source = "a paper" }',
    )
    registry = parse_registry(text, root=tmp_path)
    task = registry["gym-cartpole"]
    assert task.reference == Reference(1.5, 30.0, "a paper")
    assert not task.has_offline_expert  # its checkpoint is not on disk
    (tmp_path / "ckpt" / "cartpole").mkdir(parents=True)
    assert task.has_offline_expert
    assert parse_registry(MINIMAL)["gym-cartpole"].has_offline_expert  # scripted
    no_expert = parse_registry(MINIMAL.replace('expert = "cartpole-pd"', ""))
    assert not no_expert["gym-cartpole"].has_offline_expert
    with pytest.raises(ValueError, match="reference needs"):
        parse_registry(MINIMAL.replace('expert = "cartpole-pd"', "reference = { random = 1 }"))
    # A source alone (a suite's default) is no reference.
    only_source = MINIMAL.replace('expert = "cartpole-pd"', 'reference = { source = "x" }')
    assert parse_registry(only_source)["gym-cartpole"].reference is None


def test_shipped_atari_games_have_published_references():
    games = load_registry().by_suite("atari")
    assert len({t.env["game"] for t in games}) == 57
    for task in games:
        assert task.reference is not None and task.reference.source, task.id
        assert task.reference.human > task.reference.random, task.id
        if task.expert is None:
            assert task.dataset_path == "jat-project/jat-dataset" and task.dataset_config == task.id


def test_cli_unknown_task_is_a_clear_error(capsys):
    assert main(["score", "--task", "gym-cartpol", "--expert-episodes", "1"]) == 2
    assert "did you mean 'gym-cartpole'" in capsys.readouterr().err
