"""Evaluation starts from held-out start states: seeds disjoint from collection, prompts that
are never an evaluated episode, seeds recorded in the report."""

from __future__ import annotations

import dataclasses
import json

import datasets
import numpy as np
import pytest
import torch
from helpers import make_config

from gato.data import load_episodes
from gato.data.collect import (
    CollectConfig,
    SuiteCollectConfig,
    collect,
    measure_scores,
    recorded_seeds,
)
from gato.evaluation import ControlEvalConfig, control_markdown, evaluate_control, write_json
from gato.modeling.model import GatoModel
from gato.policy import demonstration_episode
from gato.tasks.registry import get_task
from gato.tasks.scores import EVALUATION_SEED, SCORE_SEED, SEED_SPAN, overlaps_evaluation_seeds
from gato.tokens.tokenizer import GatoTokenizer


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    """gym-pendulum with 4 freshly collected episodes (seeds 0-3) as its dataset."""
    datasets.disable_progress_bars()
    out = tmp_path_factory.mktemp("held_out") / "pendulum"
    collect(CollectConfig("gym-pendulum", 4, output=str(out), progress=False, filter=False))
    datasets.enable_progress_bars()
    return dataclasses.replace(get_task("gym-pendulum"), dataset=str(out))


@pytest.fixture(scope="module")
def model_and_tokenizer():
    torch.manual_seed(0)
    return GatoModel(make_config()).eval(), GatoTokenizer()


def test_seed_ranges_are_disjoint():
    assert SCORE_SEED >= SEED_SPAN and EVALUATION_SEED >= SCORE_SEED + SEED_SPAN
    assert ControlEvalConfig().seed == EVALUATION_SEED
    assert overlaps_evaluation_seeds(EVALUATION_SEED - 1, 2)
    assert not overlaps_evaluation_seeds(0, EVALUATION_SEED)
    assert not overlaps_evaluation_seeds(EVALUATION_SEED + SEED_SPAN, 5)


def test_collection_and_score_measuring_refuse_evaluation_seeds():
    with pytest.raises(ValueError, match="overlap the evaluation seeds"):
        CollectConfig("gym-pendulum", 2, seed=EVALUATION_SEED - 1)
    with pytest.raises(ValueError, match="overlap the evaluation seeds"):
        SuiteCollectConfig(["gym"], episodes=3, seed=EVALUATION_SEED + 10)
    with pytest.raises(ValueError, match="score measuring seeds"):
        measure_scores(get_task("gym-pendulum"), 2, 2, seed=EVALUATION_SEED, progress=False)


def test_evaluation_seeds_are_disjoint_from_collected_ones(pendulum, model_and_tokenizer, tmp_path):
    training = recorded_seeds(load_episodes(pendulum.dataset_path, task=pendulum))
    assert training == [0, 1, 2, 3]
    report = evaluate_control(
        model_and_tokenizer, [pendulum], episodes=3, num_envs=2, max_steps=3, progress=False
    )
    (task,) = report["tasks"]
    assert task["seeds"] == [EVALUATION_SEED + k for k in range(3)]
    assert not set(task["seeds"]) & set(training)
    assert task["prompt_seed"] in training and task["prompt_seed"] not in task["seeds"]
    assert "not held out" not in task["note"]
    written = json.loads(write_json(report, tmp_path / "report.json").read_text())
    assert written["tasks"][0]["seeds"] == task["seeds"]
    assert f"start-state seeds {EVALUATION_SEED}-{EVALUATION_SEED + 2}" in control_markdown(report)


def test_prompt_is_never_an_evaluated_episode(pendulum, model_and_tokenizer):
    dataset = load_episodes(pendulum.dataset_path, task=pendulum)
    best, best_seed = demonstration_episode(dataset)
    assert best_seed == best  # seeds 0-3 in row order
    # Evaluating on the training seeds themselves (asked for explicitly): the best episode is
    # evaluated, so the prompt comes from another one, and the report says it is not held out.
    report = evaluate_control(
        model_and_tokenizer, [pendulum], episodes=4, num_envs=2, max_steps=2, seed=0,
        progress=False,
    )  # fmt: skip
    (task,) = report["tasks"]
    assert task["seeds"] == [0, 1, 2, 3] and task["prompt_seed"] is None
    assert "no demonstration prompt" in task["note"] and "4 evaluated start state" in task["note"]
    others = [s for s in range(4) if s != best_seed]
    row, seed = demonstration_episode(dataset, others)
    assert (row, seed) == (best, best_seed)
    row, seed = demonstration_episode(dataset, [best_seed])
    assert seed != best_seed and seed in others and row == seed


def test_a_recipe_source_path_is_the_data_evaluation_prompts_from(
    pendulum, model_and_tokenizer, tmp_path
):
    """A recipe that points gym-pendulum at its own episodes: the evaluated spec reads those
    (prompt and training seeds), not the registry's dataset; a recipe at the registry's path
    leaves the spec as the registry has it."""
    from gato.evaluation import mixture_control_specs, mixture_control_tasks, resolve_tasks

    recipe = tmp_path / "own.toml"
    recipe.write_text(
        f'name = "own"\n[[sources]]\ntask = "gym-pendulum"\nweight = 1.0\n'
        f'path = "{pendulum.dataset_path}"\n'
    )
    (spec,) = resolve_tasks(mixture=str(recipe))
    assert spec.dataset_path == pendulum.dataset_path and spec.has_data()
    assert mixture_control_tasks(str(recipe)) == ["gym-pendulum"]
    report = evaluate_control(
        model_and_tokenizer, mixture=str(recipe), episodes=1, max_steps=2, progress=False
    )
    (task,) = report["tasks"]
    assert task["prompt_seed"] in [0, 1, 2, 3]
    default = tmp_path / "default.toml"
    default.write_text('name = "d"\n[[sources]]\ntask = "gym-pendulum"\nweight = 1.0\n')
    assert mixture_control_specs(str(default)) == [get_task("gym-pendulum")]


def test_a_checkpoint_evaluated_by_task_id_prompts_from_its_recipe_data(
    model_and_tokenizer, tmp_path
):
    """A checkpoint whose recipe points gym-pendulum at its own episodes, evaluated by the task's
    id alone (`eval.py control --checkpoint RUN --task gym-pendulum`): the prompt comes from
    those episodes (their seeds 500-502, which no registry collection uses), as it does when
    the recipe is given."""
    import hashlib
    import shutil

    from gato.evaluation import trained_recipe
    from gato.tokens.text_model import default_text_model_path

    datasets.disable_progress_bars()
    own = tmp_path / "own_pendulum"
    collect(CollectConfig("gym-pendulum", 3, seed=500, output=str(own), progress=False,
                          filter=False))  # fmt: skip
    datasets.enable_progress_bars()
    recipe = tmp_path / "own.toml"
    recipe.write_text(
        f'name = "own"\n[[sources]]\ntask = "gym-pendulum"\nweight = 1.0\npath = "{own}"\n'
    )
    step = tmp_path / "run" / "checkpoints" / "step-00000002"
    model_and_tokenizer[0].save_pretrained(step / "model")
    shutil.copy2(default_text_model_path(), step / "model" / default_text_model_path().name)
    files = {
        str(p.relative_to(step)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(step.rglob("*"))
        if p.is_file()
    }
    manifest = {"format": 1, "files": files, "step": 2, "config": {"mixture": str(recipe)}}
    (step / "MANIFEST.json").write_text(json.dumps(manifest))
    assert trained_recipe(step / "model").name == "own"
    report = evaluate_control(
        step / "model", ["gym-pendulum"], episodes=1, max_steps=2, progress=False
    )
    (task,) = report["tasks"]
    assert task["prompt_seed"] in [500, 501, 502] and task["prompt_tokens"] > 0
    given = dataclasses.replace(get_task("gym-pendulum"), dataset=str(tmp_path / "none"))
    report = evaluate_control(step / "model", [given], episodes=1, max_steps=2, progress=False)
    assert report["tasks"][0]["prompt_tokens"] == 0  # a spec given whole is read as given
    (step / "MANIFEST.json").unlink()
    assert trained_recipe(step / "model") is None


def test_recorded_seeds_of_a_dataset_written_before_episode_seeds():
    meta = {"seeds": [10, 13], "returns": [5.0, 1.0, 7.0, 2.0], "filter_threshold": 2.0}
    info = datasets.DatasetInfo(description=json.dumps(meta))
    dataset = datasets.Dataset.from_dict({"rewards": [[1.0], [2.0], [3.0]]}, info=info)
    assert recorded_seeds(dataset) == [10, 12, 13]  # the episodes at or above the threshold
    unknown = datasets.Dataset.from_dict({"rewards": [[1.0]]})
    assert recorded_seeds(unknown) is None
    assert demonstration_episode(unknown, [0])[1] is None
    np.testing.assert_equal(demonstration_episode(dataset, [12, 13]), (0, 10))
