"""The few-shot experiment's protocol pieces: its split, its statistics and its report."""

from __future__ import annotations

import math

import pytest

from gato.experiments.few_shot.experiment import (
    ML45_HELDOUT,
    ML45_TRAIN,
    SPLITS,
    FewShotConfig,
    _run_arms,
    arm_jobs,
    results_markdown,
    run,
    summarize,
    t_interval,
)
from gato.tasks.registry import load_registry


def test_ml45_split_is_the_registrys_metaworld_tasks():
    assert len(ML45_TRAIN) == 45 and len(ML45_HELDOUT) == 5
    assert not set(ML45_TRAIN) & set(ML45_HELDOUT)
    registry = load_registry()
    config = FewShotConfig()
    for task in [*config.pretrain_tasks, *config.heldout_tasks]:
        assert registry[task].suite == "metaworld"
        assert registry[task].has_offline_expert, task


def test_babyai_split_is_disjoint_registered_babyai_levels():
    registry = load_registry()
    config = FewShotConfig(split="babyai")
    assert (tuple(config.pretrain_tasks), tuple(config.heldout_tasks)) == SPLITS["babyai"]
    assert len(config.pretrain_tasks) == 15 and len(config.heldout_tasks) == 5
    assert not set(config.pretrain_tasks) & set(config.heldout_tasks)
    for task in [*config.pretrain_tasks, *config.heldout_tasks]:
        assert registry[task].suite == "babyai", task
    # Lists given beside a split replace the split's own.
    mine = FewShotConfig(split="babyai", heldout_tasks=["babyai-pickup-loc"])
    assert mine.heldout_tasks == ["babyai-pickup-loc"]
    assert mine.pretrain_tasks == list(SPLITS["babyai"][0])


def test_arms_in_worker_processes_each_come_back_once():
    # operator.add stands in for one arm: picklable, so the spawned workers can run it.
    import operator

    rows = list(_run_arms([1, 2, 3, 4, 5], workers=2, threads=10, arm=operator.add))
    assert sorted(rows) == [11, 12, 13, 14, 15]
    assert list(_run_arms([1, 2], workers=1, threads=5, arm=operator.add)) == [6, 7]


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="must not be pretrained on"):
        FewShotConfig(pretrain_tasks=["metaworld-reach"], heldout_tasks=["metaworld-reach"])
    with pytest.raises(ValueError, match="positive counts"):
        FewShotConfig(demos=[0, 10])
    with pytest.raises(ValueError, match="finetune_steps"):
        FewShotConfig(finetune_steps=0)
    with pytest.raises(ValueError, match="workers"):
        FewShotConfig(workers=0)
    with pytest.raises(ValueError, match="unknown split 'ml10'"):
        FewShotConfig(split="ml10")
    with pytest.raises(ValueError, match="finetune_train_last_blocks must be >= 0, got -1"):
        FewShotConfig(finetune_train_last_blocks=-1)


def test_freeze_options_reach_the_pretrained_arm_only(tmp_path):
    config = FewShotConfig(
        heldout_tasks=["metaworld-door-lock"],
        demos=[1, 10],
        seeds=[0, 1],
        finetune_freeze_embedding=True,
        finetune_train_last_blocks=1,
    )
    recipes = {("metaworld-door-lock", k): tmp_path / f"r{k}.toml" for k in (1, 10)}
    common = dict(preset="tiny", context=512, global_batch=2, cache_dir=str(tmp_path / "c"))
    done = {("metaworld-door-lock", 10, 1, "scratch")}
    jobs = arm_jobs(config, recipes, tmp_path / "pre", common, tmp_path, done)
    assert len(jobs) == 2 * 2 * 2 - 1
    assert ("metaworld-door-lock", 10, 1, "scratch") not in {
        (j["task"], j["demos"], j["seed"], j["arm"]) for j in jobs
    }
    for job in jobs:
        train = job["train"]
        if job["arm"] == "pretrained":
            assert train.init_from == str(tmp_path / "pre")
            assert train.freeze_embedding and train.train_last_blocks == 1
        else:
            assert train.init_from is None
            assert not train.freeze_embedding and train.train_last_blocks is None
        assert train.mixture == str(recipes[job["task"], job["demos"]])
    # Without the options both arms train everything.
    plain = arm_jobs(
        FewShotConfig(heldout_tasks=["metaworld-door-lock"], demos=[1], seeds=[0]),
        recipes,
        tmp_path / "pre",
        common,
        tmp_path,
    )
    assert all(
        not j["train"].freeze_embedding and j["train"].train_last_blocks is None for j in plain
    )


def test_t_interval_known_answers():
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3))
    mean, half = t_interval([0.5])
    assert mean == 0.5 and math.isnan(half)
    with pytest.raises(ValueError):
        t_interval([])


def test_summary_says_when_intervals_separate():
    records = []
    for seed, (p, s) in enumerate([(0.80, 0.10), (0.82, 0.12), (0.81, 0.11)]):
        records += [
            {"task": "a", "demos": 10, "seed": seed, "arm": "pretrained", "normalized_score": p},
            {"task": "a", "demos": 10, "seed": seed, "arm": "scratch", "normalized_score": s},
        ]
    for seed, (p, s) in enumerate([(0.5, 0.1), (0.1, 0.5)]):
        records += [
            {"task": "b", "demos": 1, "seed": seed, "arm": "pretrained", "normalized_score": p},
            {"task": "b", "demos": 1, "seed": seed, "arm": "scratch", "normalized_score": s},
        ]
    summary = summarize(records)
    wins = {(w["task"], w["demos"]): w for w in summary["wins"]}
    assert wins[("a", 10)]["pretrained_better"] and wins[("a", 10)]["intervals_separate"]
    assert not wins[("b", 1)]["pretrained_better"] and not wins[("b", 1)]["intervals_separate"]
    table = results_markdown(summary)
    assert "| a | 10 | 81.0% +- 2.5 (n=3) | 11.0% +- 2.5 (n=3) | yes | yes |" in table


@pytest.mark.slow
def test_the_protocol_runs_end_to_end_with_parallel_arms(tmp_path):
    """Collection, pretraining, two arms per count in two worker processes, the report."""
    config = FewShotConfig(
        output_dir=str(tmp_path / "fs"),
        split="babyai",
        pretrain_tasks=["babyai-go-to-red-ball"],
        heldout_tasks=["babyai-go-to-obj"],
        pretrain_episodes=3,
        demos=[1, 2],
        seeds=[0],
        context=512,
        global_batch=2,
        pretrain_steps=4,
        finetune_steps=2,
        eval_episodes=2,
        eval_max_steps=5,
        collect_workers=1,
        workers=2,
    )
    summary = run(config)
    out = tmp_path / "fs"
    rows = [line for line in (out / "results.jsonl").read_text().splitlines() if line]
    assert len(rows) == 4  # 2 counts x 2 arms x 1 seed
    assert {(w["task"], w["demos"]) for w in summary["wins"]} == {
        ("babyai-go-to-obj", 1),
        ("babyai-go-to-obj", 2),
    }
    assert (out / "few_shot.png").stat().st_size > 0
    # A second call finds every arm done and trains nothing.
    assert run(config) == summary


def _fake_collect(kept_per_call: list[int], calls: list):
    """A `collect` that keeps `kept_per_call[i]` of the episodes of call i, each row naming the
    seed it was reset from."""
    import datasets

    from gato.data.collect import NothingKeptError
    from gato.data.io import save_dataset

    def collect(config):
        kept = kept_per_call[len(calls)]
        calls.append((config.episodes, config.seed))
        if kept == 0:  # as `collect` does when no episode passes the filter
            raise NothingKeptError("no episode reached the filter threshold; nothing written")
        rows = {"seed": [config.seed + i for i in range(min(kept, config.episodes))]}
        features = datasets.Features({"seed": datasets.Value("int64")})
        save_dataset(datasets.Dataset.from_dict(rows, features=features), config.output)

    return collect


def test_held_out_demonstrations_are_topped_up_past_the_filter(tmp_path):
    import datasets

    from gato.experiments.few_shot.experiment import TOP_UP_SEED_STRIDE, _collect_kept

    calls: list = []
    path = tmp_path / "door-unlock"
    # The filter keeps 63 of the first 100, then 30 of the 74 asked next, then all.
    _collect_kept(
        "metaworld-door-unlock", 100, path, 1, collect_fn=_fake_collect([63, 30, 100], calls)
    )
    assert calls == [
        (100, 0),
        (74, 2 * TOP_UP_SEED_STRIDE + 63),
        (14, 3 * TOP_UP_SEED_STRIDE + 93),
    ]
    seeds = datasets.load_from_disk(str(path))["seed"]
    assert len(seeds) == 107 and len(set(seeds)) == 107  # no start state twice
    assert max(seeds) < 1_000_000  # below the expert-score and evaluation ranges
    assert not list(tmp_path.glob(".door-unlock.round-*"))  # the parts are gone
    # Enough already: nothing is collected.
    _collect_kept("metaworld-door-unlock", 100, path, 1, collect_fn=_fake_collect([], calls))
    assert len(calls) == 3


def test_held_out_demonstrations_that_never_pass_the_filter_fail_clearly(tmp_path):
    calls: list = []
    from gato.experiments.few_shot.experiment import _collect_kept

    with pytest.raises(RuntimeError, match="2 expert episodes passed the filter after 3 rounds"):
        _collect_kept(
            "metaworld-bin-picking", 10, tmp_path / "bp", 1, rounds=3,
            collect_fn=_fake_collect([2, 0, 0], calls),
        )  # fmt: skip
    assert len(calls) == 3
