"""The optimizer's parameter groups: weight decay by kind, the blocks' learning-rate share."""

from __future__ import annotations

import pytest
import torch
from helpers import make_config

from gato.modeling.model import GatoModel
from gato.training.schedule import parameter_groups


def ids(params) -> set[int]:
    return {id(p) for p in params}


def test_default_groups_are_decayed_then_undecayed_matrices_first():
    model = GatoModel(make_config())
    groups = parameter_groups(model, 0.1)
    assert len(groups) == 2 and "lr" not in groups[0] and "lr" not in groups[1]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.ndim >= 2 for p in groups[0]["params"])
    everything = ids(p for p in model.parameters() if p.requires_grad)
    assert ids(groups[0]["params"]) | ids(groups[1]["params"]) == everything


def test_scaled_blocks_learn_at_their_share_and_nothing_else_does():
    model = GatoModel(make_config())
    groups = parameter_groups(model, 0.1, block_lr_scale=0.25, learning_rate=2e-3)
    blocks = ids(model.layers.parameters())
    scaled = [g for g in groups if "lr" in g]
    assert ids(p for g in scaled for p in g["params"]) == blocks
    assert all(g["lr"] == pytest.approx(5e-4) for g in scaled)
    assert not blocks & ids(p for g in groups if "lr" not in g for p in g["params"])
    # Decay still follows the kind of parameter inside the blocks.
    for g in scaled:
        assert g["weight_decay"] == (0.1 if all(p.ndim >= 2 for p in g["params"]) else 0.0)
    # A scheduler scales every group from its own rate.
    optimizer = torch.optim.AdamW(groups, lr=2e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [2.5e-4, 1e-3]
    del schedule


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_a_scale_that_is_not_positive_is_refused(scale):
    with pytest.raises(ValueError, match="block_lr_scale must be positive"):
        parameter_groups(GatoModel(make_config()), 0.1, scale, 1e-3)


def test_train_config_refuses_a_bad_scale():
    from gato.training.config import TrainConfig

    with pytest.raises(ValueError, match="block_lr_scale must be positive"):
        TrainConfig(block_lr_scale=0.0)
    assert TrainConfig(block_lr_scale=0.1).identity()["block_lr_scale"] == 0.1
    assert TrainConfig().identity()["block_lr_scale"] == 0.5  # the main job's default
    # A run recorded before the field trained its blocks at the whole rate: no key, as then.
    assert "block_lr_scale" not in TrainConfig(block_lr_scale=1.0).identity()


def test_block_factor_restores_the_whole_rate_before_the_switch():
    from gato.training.schedule import block_lr_factor

    assert block_lr_factor(0, 0.25, 0) == 1.0  # scaled from the first step: as before the field
    assert [block_lr_factor(s, 0.25, 3) for s in range(5)] == [4.0, 4.0, 4.0, 1.0, 1.0]
    assert block_lr_factor(10, 1.0, 20) == 1.0  # an unscaled run has nothing to restore
    with pytest.raises(ValueError, match="block_lr_scale_from must be >= 0, got -1"):
        block_lr_factor(0, 0.25, -1)
    with pytest.raises(ValueError, match="block_lr_scale must be positive"):
        block_lr_factor(0, 0.0, 3)


def test_trainer_runs_the_blocks_at_the_whole_rate_until_the_switch(small_recipe, tmp_path):
    from gato.training.config import TrainConfig
    from gato.training.schedule import learning_rate_factor
    from gato.training.trainer import Trainer

    config = TrainConfig(
        preset="tiny", mixture=str(small_recipe), global_batch=4, context=128, steps=20,
        warmup_steps=2, learning_rate=1e-3, block_lr_scale=0.25, block_lr_scale_from=5,
        output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
        mixed_precision="no", report_to="none",
    )  # fmt: skip
    trainer = Trainer(config)
    blocks = ids(trainer._bare_model().layers.parameters())
    for step in range(8):
        whole = 1e-3 * learning_rate_factor(
            step, 2, 20, config.final_lr_ratio, config.lr_schedule, config.lr_decay_fraction
        )
        for group in trainer.optimizer.param_groups:
            in_block = ids(group["params"]) <= blocks
            want = whole * (0.25 if in_block and step >= 5 else 1.0)
            assert group["lr"] == pytest.approx(want), (step, in_block)
        trainer.scheduler.step()


def test_train_config_refuses_a_negative_switch_and_records_a_set_one():
    from gato.training.config import TrainConfig

    with pytest.raises(ValueError, match="block_lr_scale_from must be >= 0, got -3"):
        TrainConfig(block_lr_scale_from=-3)
    for bad in (True, 2.5, "400"):
        with pytest.raises(ValueError, match="block_lr_scale_from must be a step"):
            TrainConfig(block_lr_scale_from=bad)
    assert TrainConfig(block_lr_scale_from=400).identity()["block_lr_scale_from"] == 400
    assert TrainConfig(block_lr_scale_from=None).identity()["block_lr_scale_from"] is None
    # The default scales from the first step, as runs recorded before the field did: no key.
    assert "block_lr_scale_from" not in TrainConfig().identity()


def test_switch_none_is_where_the_recipe_starts_control(small_recipe, tmp_path):
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    text = small_recipe.read_text()
    scheduled = tmp_path / "lesson.toml"
    # Captions alone for 7 steps, then control beside them.
    scheduled.write_text(
        text.replace('kind = "control"', 'kind = "control"\nfrom_step = 7').replace(
            'task = "text"\nweight = 1.0', 'task = "text"\nweight = 1.0\nfrom_step = 7'
        )
    )
    captions_only = tmp_path / "captions.toml"
    captions_only.write_text('name = "captions"\n[[sources]]\n' + text.split("[[sources]]\n")[2])

    def switch(recipe, **options):
        config = TrainConfig(
            preset="tiny", mixture=str(recipe), global_batch=4, context=128,
            output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
            mixed_precision="no", report_to="none", **options,
        )  # fmt: skip
        return Trainer(config).block_lr_scale_from

    assert switch(scheduled) == 0  # the default: scaled from the first step, as before
    assert switch(scheduled, block_lr_scale_from=None) == 7
    # Control from the first step: scaled throughout; no control: as set, from the first step.
    assert switch(small_recipe, block_lr_scale_from=None) == 0
    assert switch(captions_only, block_lr_scale_from=None) == 0
    assert switch(scheduled, block_lr_scale_from=2) == 2  # set by hand: as set


def test_isolated_packing_reaches_the_batches_and_the_run_identity(small_recipe, tmp_path):
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    def first_batch(**options):
        config = TrainConfig(
            preset="tiny", mixture=str(small_recipe), global_batch=4, context=128,
            output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
            mixed_precision="no", report_to="none", **options,
        )  # fmt: skip
        trainer = Trainer(config)
        batch = next(trainer.data).batch
        trainer.data.close()
        return batch

    isolated = first_batch()  # the default
    assert isolated.segment_ids is not None and int(isolated.segment_ids.max()) >= 1
    assert first_batch(isolate_packed=False).segment_ids is None
    assert TrainConfig().identity()["isolate_packed"] is True
    # Runs recorded without the field saw the whole row: they resume with it off.
    assert "isolate_packed" not in TrainConfig(isolate_packed=False).identity()
    with pytest.raises(ValueError, match="isolate_packed must be a bool, got 'yes'"):
        TrainConfig(isolate_packed="yes")


def test_wsd_holds_the_peak_then_decays_linearly_to_the_final_ratio():
    from gato.training.schedule import learning_rate_factor

    def wsd(step: int) -> float:
        return learning_rate_factor(step, 10, 100, 0.1, "wsd", 0.2)

    assert wsd(0) == pytest.approx(0.1) and wsd(9) == pytest.approx(1.0)  # the warmup
    assert [wsd(s) for s in (10, 50, 80)] == [1.0, 1.0, 1.0]  # held until step 80 of 100
    # then linear: 1 - 0.9 * (step - 80) / 20
    for step in (85, 90, 99):
        assert wsd(step) == pytest.approx(1.0 - 0.9 * (step - 80) / 20)
    assert wsd(100) == pytest.approx(0.1) and wsd(150) == pytest.approx(0.1)
    # a decay longer than the run after its warmup starts where the warmup ends
    assert learning_rate_factor(10, 10, 20, 0.1, "wsd", 1.0) == pytest.approx(1.0)
    assert learning_rate_factor(15, 10, 20, 0.1, "wsd", 1.0) == pytest.approx(0.55)
    # the cosine is unchanged by the new arguments
    assert learning_rate_factor(55, 10, 100, 0.1) == pytest.approx(0.55)


def test_a_bad_schedule_is_refused_by_name():
    from gato.training.config import TrainConfig
    from gato.training.schedule import learning_rate_factor

    with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
        learning_rate_factor(0, 1, 10, 0.1, "linear")
    with pytest.raises(ValueError, match="decay_fraction must lie in"):
        learning_rate_factor(0, 1, 10, 0.1, "wsd", 0.0)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="lr_decay_fraction must be in"):
        TrainConfig(lr_schedule="wsd", lr_decay_fraction=1.5)


def test_the_trainer_follows_the_wsd_schedule(small_recipe, tmp_path):
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    config = TrainConfig(
        preset="tiny", mixture=str(small_recipe), global_batch=4, context=128, steps=20,
        warmup_steps=2, learning_rate=1e-3, lr_schedule="wsd", lr_decay_fraction=0.25,
        output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
        mixed_precision="no", report_to="none",
    )  # fmt: skip
    trainer = Trainer(config)
    seen = []
    for _ in range(20):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.scheduler.step()
    assert seen[2:15] == [pytest.approx(1e-3)] * 13  # held from the warmup's end to step 15
    assert seen[15] == pytest.approx(1e-3) and seen[19] == pytest.approx(1e-3 * (1 - 0.9 * 4 / 5))


def test_the_schedule_is_part_of_a_run_s_identity():
    """A run recorded before the schedule was a field decayed by cosine: its identity has no
    schedule, and only `--lr_schedule cosine` matches it; a wsd run records its own."""
    from gato.training.config import TrainConfig

    assert "lr_schedule" not in TrainConfig(lr_schedule="cosine").identity()
    wsd = TrainConfig().identity()
    assert wsd["lr_schedule"] == "wsd" and wsd["lr_decay_fraction"] == 0.2
    assert TrainConfig(lr_decay_fraction=0.3).identity() != wsd
