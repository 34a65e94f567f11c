"""PathNet FFNs in GatoModel: config checks, dense equivalence, save/load, no forgetting; and the
PathNet actor-critic against the IMPALA network interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gato.experiments.pathnet.transfer import (
    freeze_pathway,
    fresh_pathway,
    from_dense,
    new_task_parameters,
)
from gato.modeling.config import GatoConfig
from gato.modeling.ffn import GatoMLP, PathNetFFN, get_pathway, set_pathway
from gato.modeling.model import GatoModel

SMALL = dict(
    num_hidden_layers=2,
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=2,
    head_dim=16,
    max_position_embeddings=32,
)


def _config(**overrides) -> GatoConfig:
    return GatoConfig.from_preset("tiny", **{**SMALL, **overrides})


def _batch(seed: int, length: int = 24) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(32000, 34048, (3, length), generator=g)
    return {"input_ids": ids, "loss_mask": torch.ones_like(ids, dtype=torch.bool)}


def test_config_checks_the_pathnet_fields():
    with pytest.raises(ValueError, match="ffn"):
        _config(ffn="moe")
    with pytest.raises(ValueError, match="exceeds pathnet_modules"):
        _config(ffn="pathnet", pathnet_modules=3, pathnet_active=4)
    with pytest.raises(ValueError, match="not divisible"):
        _config(ffn="pathnet", pathnet_active=3, pathnet_modules=6)
    with pytest.raises(ValueError, match="pathnet_module_size"):
        _config(ffn="pathnet", pathnet_module_size=0)
    assert _config(ffn="pathnet", pathnet_active=3, pathnet_modules=6, pathnet_module_size=20)


def test_dense_is_the_default_and_keeps_its_block():
    cfg = _config()
    assert cfg.ffn == "dense"
    model = GatoModel(cfg)
    assert isinstance(model.layers[0].mlp, GatoMLP)
    assert {"fc_in.weight", "fc_out.weight"} == set(dict(model.layers[0].mlp.named_parameters()))
    with pytest.raises(ValueError, match="not PathNet"):
        get_pathway(model)


def test_from_dense_computes_the_same_function():
    torch.manual_seed(0)
    dense = GatoModel(_config()).eval()
    pathnet = from_dense(dense).eval()
    assert isinstance(pathnet.layers[0].mlp, PathNetFFN)
    batch = _batch(1)
    with torch.no_grad():
        a = dense(**batch, return_logits=True)
        b = pathnet(**batch, return_logits=True)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.loss, a.loss, atol=1e-6, rtol=1e-6)


def test_pathway_and_frozen_modules_survive_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = GatoModel(_config(ffn="pathnet")).eval()
    genotype = np.array([[4, 5, 6, 6], [0, 7, 1, 2]])
    set_pathway(model, genotype)
    freeze_pathway(model, genotype)
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    np.testing.assert_array_equal(get_pathway(loaded), genotype)
    assert loaded.layers[0].mlp.active == (4, 5, 6)
    assert loaded.layers[1].mlp.frozen.tolist() == [1, 1, 1, 0, 0, 0, 0, 1]
    with torch.no_grad():
        assert torch.equal(model(**_batch(2)).loss, loaded(**_batch(2)).loss)
    with pytest.raises(ValueError, match="shape"):
        set_pathway(model, np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, M=8\)"):
        set_pathway(model, np.full((2, 4), 8))


def _train(model, params, seed, steps=8, lr=3e-3):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.1)
    model.train()
    for step in range(steps):
        loss = model(**_batch(seed + step)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def test_a_new_task_on_a_fresh_pathway_leaves_the_old_tasks_bit_identical():
    torch.manual_seed(0)
    model = GatoModel(_config(ffn="pathnet"))
    p0 = get_pathway(model)
    _train(model, list(model.parameters()), seed=100)  # the "old tasks"
    old_batch = _batch(7)
    with torch.no_grad():
        old_logits = model(**old_batch, return_logits=True).logits
    before = {k: v.clone() for k, v in model.state_dict().items()}

    freeze_pathway(model, p0)
    p1 = fresh_pathway(model)
    assert not set(p1.ravel()) & set(p0.ravel())
    params = new_task_parameters(model, p1)
    assert len(params) == 2 * 4 * 2  # 4 fresh modules x 2 matrices x 2 blocks
    with torch.no_grad():
        new_before = float(model(**_batch(500)).loss)
    _train(model, params, seed=500, steps=15)  # the "new task"
    with torch.no_grad():
        new_after = float(model(**_batch(500)).loss)
    assert new_after < new_before  # the new pathway learnt something

    set_pathway(model, p0)
    with torch.no_grad():
        assert torch.equal(model(**old_batch, return_logits=True).logits, old_logits)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    fresh = {f"layers.{i}.mlp.experts.{m}." for i, row in enumerate(p1) for m in row}
    buffers = {k for k in changed if k.endswith((".pathway", ".frozen"))}
    assert changed - buffers and all(any(k.startswith(f) for f in fresh) for k in changed - buffers)

    # Plain fine-tuning of the same kind changes the old tasks' outputs.
    model.requires_grad_(True)
    _train(model, list(model.parameters()), seed=500, steps=3)
    with torch.no_grad():
        assert not torch.equal(model(**old_batch, return_logits=True).logits, old_logits)


def test_new_task_errors_are_named():
    model = GatoModel(_config(ffn="pathnet", pathnet_modules=6))
    p0 = get_pathway(model)
    freeze_pathway(model, p0)
    with pytest.raises(ValueError, match="every module of the pathway is frozen"):
        new_task_parameters(model, p0)
    with pytest.raises(ValueError, match="unfrozen modules"):
        fresh_pathway(model)  # 2 free modules per block, 4 needed
    assert fresh_pathway(model, reuse=2).tolist() == [[0, 1, 4, 5]] * 2


# -- the actor-critic ---------------------------------------------------------------------------


def test_pathnet_actor_critic_follows_the_impala_interface():
    gym = pytest.importorskip("gymnasium")
    networks = pytest.importorskip("gato.rl.networks")
    from gato.experiments.pathnet.rl import PathNetActorCritic

    obs_space = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    for action_space, shape in (
        (gym.spaces.Discrete(3), (4, 3)),
        (gym.spaces.Box(-1, 1, (2,)), (4, 2)),
    ):
        net = PathNetActorCritic(
            obs_space, action_space, genotype=[[0, 3], [1, 1]], frozen=[[0], [1]]
        )
        assert isinstance(net, networks.ActorCritic)
        params, value = net(torch.randn(4, 5))
        assert params.shape == shape and value.shape == (4,)
        assert net.distribution(params).sample().shape[0] == 4
        rebuilt = networks.build_network(
            networks.network_target(net), obs_space, action_space, net.hyperparameters()
        )
        rebuilt.load_state_dict(net.state_dict())
        x = torch.randn(6, 5)
        assert torch.equal(rebuilt(x)[0], net(x)[0])
        # Frozen modules take no gradient: an RMSProp step (the learner's) leaves them as they are.
        frozen = net.frozen_state()
        opt = torch.optim.RMSprop(net.parameters(), lr=0.1)
        p, v = net(torch.randn(8, 5))
        (p.square().mean() + v.square().mean()).backward()
        opt.step()
        assert all(torch.equal(t, frozen[k]) for k, t in net.frozen_state().items())
        assert net.trunk.layers[0][3].weight.requires_grad
    with pytest.raises(ValueError, match="frozen module"):
        PathNetActorCritic(obs_space, gym.spaces.Discrete(2), frozen=[[9], []])


# -- the RL transfer experiment -----------------------------------------------------------------


def test_steps_to_target_is_the_first_full_window_at_the_target():
    from gato.experiments.pathnet.rl import steps_to_target

    returns = [(10, 0.0), (20, 100.0), (30, 100.0), (40, 300.0), (50, 300.0)]
    assert steps_to_target(returns, 100.0, 2) == 30
    assert steps_to_target(returns, 200.0, 2) == 40
    assert steps_to_target(returns, 300.0, 2) == 50
    assert steps_to_target(returns, 301.0, 2) is None
    assert steps_to_target(returns[:1], 0.0, 2) is None  # never a full window


def test_cartpole_variants_share_cartpoles_spaces_and_differ_in_the_pole():
    pytest.importorskip("gymnasium")
    from gato.experiments.pathnet.rl import REGISTRY, RLTransferConfig
    from gato.tasks.envs import make_env
    from gato.tasks.registry import get_task

    config = RLTransferConfig()
    a = get_task(config.task_a, config.registry_path)
    b = get_task(config.task_b, config.registry_path)
    assert config.registry_path == str(REGISTRY)
    env_a, env_b = make_env(a), make_env(b)
    try:
        assert a.observation == b.observation and a.action == b.action
        assert env_a._env.observation_space == env_b._env.observation_space
        assert env_a._env.action_space == env_b._env.action_space
        pole_a = env_a._env.unwrapped.length
        pole_b = env_b._env.unwrapped.length
        assert (pole_a, pole_b) == (0.5, 0.25)
    finally:
        env_a.close()
        env_b.close()


def test_rl_transfer_config_checks():
    from gato.experiments.pathnet.rl import RLTransferConfig

    with pytest.raises(ValueError, match="reuse"):
        RLTransferConfig(reuse=3)
    with pytest.raises(ValueError, match="ways"):
        RLTransferConfig(ways=["pathnet", "distil"])
    with pytest.raises(ValueError, match="steps_b"):
        RLTransferConfig(steps_b=0)


def test_rl_transfer_runs_end_to_end_and_keeps_a_frozen(tmp_path):
    pytest.importorskip("gymnasium")
    from gato.experiments.pathnet.rl import RLTransferConfig, run_rl_transfer

    config = RLTransferConfig(
        steps_a=1280,
        steps_b=640,
        seeds=1,
        target_return=1e9,  # never reached: every way runs its whole budget
        output_dir=str(tmp_path),
    )
    report = run_rl_transfer(config, progress=False)
    (record,) = report["records"]
    assert set(record["B"]) == {"pathnet", "finetune", "scratch"}
    for entry in record["B"].values():
        assert entry["steps_to_target"] is None and entry["cost"] == 640
        assert entry["steps"] >= 640
    pathnet = record["B"]["pathnet"]
    assert pathnet["frozen_unchanged"]
    # reuse = 1: each layer of B's pathway reads exactly one of A's modules.
    for row_a, row_b in zip(record["genotype_a"], pathnet["genotype"], strict=True):
        assert len(set(row_a) & set(row_b)) == 1
    assert record["B"]["finetune"]["genotype"] == record["genotype_a"]
    assert report["summary"]["pathnet"]["not_reached"] == 1
    for name in ("result.json", "result.md", "records.json", "steps.png"):
        assert (tmp_path / name).exists()
