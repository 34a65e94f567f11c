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
    assert TrainConfig().identity()["block_lr_scale"] == 0.3  # the main job's default
    # A run recorded before the field trained its blocks at the whole rate: no key, as then.
    assert "block_lr_scale" not in TrainConfig(block_lr_scale=1.0).identity()
