"""IMPALA: networks, loss, runners, actor processes (and their deaths), training, experts."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from gato.rl.actors import ActorError, LocalActors, SharedWeights, actor_settings
from gato.rl.impala import PRESETS, ImpalaConfig, main, parse_args, train
from gato.rl.learner import (
    Learner,
    NonFiniteLossError,
    export_policy,
    impala_loss,
    load_policy,
)
from gato.rl.networks import (
    ActorCritic,
    AtariCNNActorCritic,
    GaussianMLPActorCritic,
    MLPActorCritic,
    Tanh,
    build_network,
    default_network,
    network_target,
)
from gato.rl.runner import EnvRunner, make_layout, sample_categorical, stack_unrolls
from gato.rl.spaces import space_from_dict, space_to_dict, task_spaces
from gato.tasks.envs import make_env
from gato.tasks.registry import UnknownTaskError, parse_registry

REGISTRY = """
[suites.gym]

[tasks.t-cartpole]
suite = "gym"
env = { id = "CartPole-v1" }
observation = { continuous_observations = { shape = [4] } }
action = { kind = "discrete", num_values = 2 }
episode_limit = 500

[tasks.t-cartpole-short]
suite = "gym"
env = { id = "CartPole-v1" }
observation = { continuous_observations = { shape = [4] } }
action = { kind = "discrete", num_values = 2 }
episode_limit = 5

[tasks.t-pendulum]
suite = "gym"
env = { id = "Pendulum-v1" }
observation = { continuous_observations = { shape = [3] } }
action = { kind = "continuous", shape = [1] }
episode_limit = 200

[tasks.t-taxi]
suite = "gym"
env = { id = "Taxi-v4" }
observation = { discrete_observations = { shape = [1] } }
action = { kind = "discrete", num_values = 6 }
episode_limit = 200
"""


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "tasks.toml"
    path.write_text(REGISTRY)
    return path


@pytest.fixture(scope="module")
def registry(registry_path: Path):
    return parse_registry(REGISTRY, root=registry_path.parent, path=registry_path)


def tiny_config(registry_path: Path, output_dir: Path, **overrides) -> ImpalaConfig:
    values = dict(
        task="t-cartpole", registry=str(registry_path), output_dir=str(output_dir),
        total_steps=640, num_actors=2, envs_per_actor=4, unroll_length=8, batch_size=8,
        checkpoint_every=256, progress=False, learning_rate=1e-3,
    )  # fmt: skip
    values.update(overrides)
    return ImpalaConfig(**values)


# ---------------------------------------------------------------------------------------------
# Networks and spaces
# ---------------------------------------------------------------------------------------------


def test_networks_shapes_and_distributions() -> None:
    vec = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    image = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    cases = [
        (MLPActorCritic, vec, gym.spaces.Discrete(3), torch.randn(7, 5)),
        (GaussianMLPActorCritic, vec, gym.spaces.Box(-1, 1, (2,)), torch.randn(7, 5)),
        (AtariCNNActorCritic, image, gym.spaces.Discrete(6),
         torch.randint(0, 256, (7, 84, 84, 4), dtype=torch.uint8)),
        (MLPActorCritic, gym.spaces.MultiDiscrete([500]), gym.spaces.Discrete(6),
         torch.randint(0, 500, (7, 1))),
    ]  # fmt: skip
    for cls, obs_space, act_space, obs in cases:
        net = cls(obs_space, act_space)
        assert type(default_network(obs_space, act_space)) is cls
        params, value = net(obs)
        torch.testing.assert_close(net.policy(obs), params)
        assert value.shape == (7,)
        assert params.shape == (7, net.action_dim)
        dist = net.distribution(params)
        action = dist.sample()
        assert dist.log_prob(action).shape == (7,) and dist.entropy().shape == (7,)
        rebuilt = build_network(network_target(net), obs_space, act_space, net.hyperparameters())
        rebuilt.load_state_dict(net.state_dict())
        torch.testing.assert_close(rebuilt(obs)[0], params)


def test_one_hot_encoder_distinguishes_states() -> None:
    net = MLPActorCritic(gym.spaces.MultiDiscrete([4, 3]), gym.spaces.Discrete(2))
    encoded = net.encoder(torch.tensor([[0, 0], [3, 2]]))
    assert encoded.tolist() == [[1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0, 1]]


def test_network_bad_spaces() -> None:
    vec = gym.spaces.Box(-1, 1, (3,))
    with pytest.raises(ValueError, match="unsupported action space"):
        MLPActorCritic(vec, gym.spaces.MultiBinary(2))
    with pytest.raises(ValueError, match="needs Discrete actions"):
        MLPActorCritic(vec, gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(ValueError, match="needs Box actions"):
        GaussianMLPActorCritic(vec, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match=r"\[H, W, C\] images"):
        AtariCNNActorCritic(vec, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="module:ClassName"):
        build_network("nocolon", vec, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="not an ActorCritic"):
        build_network("torch.nn:Linear", vec, gym.spaces.Discrete(2))


def test_task_spaces(registry) -> None:
    obs, act = task_spaces(registry["t-cartpole"])
    assert obs.shape == (4,) and act == gym.spaces.Discrete(2)
    obs, act = task_spaces(registry["t-pendulum"])
    assert act.shape == (1,) and float(act.low[0]) == -1.0
    with pytest.raises(ValueError, match="discrete observations need the environment"):
        task_spaces(registry["t-taxi"])
    env = make_env(registry["t-taxi"])
    obs, _ = task_spaces(registry["t-taxi"], env)
    env.close()
    assert list(obs.nvec) == [500]
    for space in (obs, act, gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)):
        assert space_from_dict(json.loads(json.dumps(space_to_dict(space)))) == space


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------


def test_impala_loss_terms_and_gradient_direction() -> None:
    T, B = 4, 3
    logits = torch.zeros(T, B, 2, requires_grad=True)
    values = torch.zeros(T, B, requires_grad=True)
    actions = torch.zeros(T, B, dtype=torch.long)
    dist = torch.distributions.Categorical(logits=logits)
    target = dist.log_prob(actions)
    rewards = torch.ones(T, B)  # every action taken was rewarded
    loss = impala_loss(
        behaviour_log_probs=target.detach(),
        target_log_probs=target,
        entropy=dist.entropy(),
        values=values,
        bootstrap_value=torch.zeros(B),
        rewards=rewards,
        discounts=torch.full((T, B), 0.9),
        baseline_cost=0.5,
        entropy_cost=0.01,
    )
    torch.testing.assert_close(loss.total, loss.policy + loss.baseline + loss.entropy)
    torch.testing.assert_close(loss.entropy, -0.01 * T * B * torch.tensor(math.log(2.0)))
    loss.total.backward()
    # Rewarded actions get more probable, and the baseline rises towards the positive returns.
    assert (logits.grad[..., 0] < 0).all() and (logits.grad[..., 1] > 0).all()
    assert (values.grad < 0).all()
    with pytest.raises(ValueError, match="entropy has shape"):
        impala_loss(target.detach(), target.detach(), torch.zeros(T), values.detach(),
                    torch.zeros(B), rewards, torch.ones(T, B))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Runner, weights, actor processes
# ---------------------------------------------------------------------------------------------


def test_env_runner_unrolls_are_consistent(registry) -> None:
    task = registry["t-cartpole-short"]  # 5-step episodes: every episode is truncated
    obs_space, act_space = task_spaces(task)
    net = default_network(obs_space, act_space)
    layout = make_layout(task, unroll_length=7, num_envs=3)
    runner = EnvRunner(task, net, layout, seed=0, discount=0.9)
    first = {k: v.numpy() for k, v in layout.allocate(shared=False).items()}
    second = {k: v.numpy() for k, v in layout.allocate(shared=False).items()}
    runner.fill(first)
    runner.fill(second)
    np.testing.assert_array_equal(second["obs"][0], first["obs"][-1])
    both = stack_unrolls([first, second])
    assert both["obs"].shape == (8, 6, 4) and both["action"].shape == (7, 6)
    assert "stamp" not in both
    done = first["done"]
    # Truncation at step 5 of each episode; the reward there carries 0.9 * V(final obs).
    assert done[4].all() and not done[:4].any()
    np.testing.assert_array_equal(first["episode_length"][4], [5, 5, 5])
    np.testing.assert_array_equal(first["episode_return"][4], [5.0, 5.0, 5.0])
    assert np.isnan(first["episode_return"][~done]).all()
    assert not np.allclose(first["reward"][4], 1.0) and np.allclose(first["reward"][:4], 1.0)
    # The behaviour log-probs are the network's own.
    with torch.no_grad():
        logits, _ = net(torch.from_numpy(first["obs"][:7].reshape(-1, 4)))
        expected = net.distribution(logits).log_prob(torch.from_numpy(first["action"].ravel()))
    np.testing.assert_allclose(first["behaviour_log_prob"].ravel(), expected.numpy(), rtol=1e-5)


def test_numpy_categorical_sampler_matches_the_distribution() -> None:
    rng = np.random.default_rng(0)
    with np.errstate(divide="ignore"):  # log 0 = -inf: a masked action
        probs = np.array([[0.2, 0.8], [0.5, 0.5], [0.0, 1.0], [0.1, 0.9]], np.float32)
        logits = np.log(probs)
    rows = np.repeat(logits, 5000, axis=0)  # 5000 draws from each row
    actions, log_probs = sample_categorical(rows, rng)
    assert actions.dtype == np.int64 and log_probs.dtype == np.float32
    frequency = actions.reshape(4, 5000).mean(axis=1)
    np.testing.assert_allclose(frequency, [0.8, 0.5, 1.0, 0.9], atol=0.03)  # > 4 sigma
    expected = torch.distributions.Categorical(logits=torch.from_numpy(rows)).log_prob(
        torch.from_numpy(actions)
    )
    np.testing.assert_allclose(log_probs, expected.numpy(), rtol=1e-5, atol=1e-6)
    # Never an action of probability 0, at either end of the row.
    masked = np.array([[-np.inf, 0.0, -np.inf], [0.0, -np.inf, -np.inf]], np.float32)
    actions, log_probs = sample_categorical(np.repeat(masked, 1000, axis=0), rng)
    assert (actions[:1000] == 1).all() and (actions[1000:] == 0).all()
    assert np.all(log_probs == 0.0)


def test_numpy_tanh_matches_torch() -> None:
    x = torch.randn(64, 33) * 3
    torch.testing.assert_close(Tanh()(x), torch.tanh(x), rtol=2e-7, atol=2e-7)
    with torch.inference_mode():
        torch.testing.assert_close(Tanh()(x), torch.tanh(x), rtol=2e-7, atol=2e-7)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (Tanh()(a) * x).sum().backward()
    (torch.tanh(b) * x).sum().backward()
    # 1 - y^2 from outputs one ulp apart (x up to ~10 scales the difference).
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
    double = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Tanh(), (double,))


def test_learner_fast_paths_match_torch_reference(registry) -> None:
    """The learner's log-softmax scoring, foreach RMSProp and gradient clip against
    Categorical, the per-tensor RMSProp and clip_grad_norm_, clipping active."""
    task = registry["t-cartpole"]
    obs_space, act_space = task_spaces(task)
    torch.manual_seed(0)
    fast_net = default_network(obs_space, act_space)
    slow_net = default_network(obs_space, act_space)
    slow_net.load_state_dict(fast_net.state_dict())
    layout = make_layout(task, unroll_length=6, num_envs=4)
    runner = EnvRunner(task, fast_net, layout, seed=0, discount=0.99)
    unrolls = []
    for _ in range(2):
        unrolls.append({k: v.numpy() for k, v in layout.allocate(shared=False).items()})
        runner.fill(unrolls[-1])
    config = ImpalaConfig(envs_per_actor=4, batch_size=8, grad_clip=0.5, total_steps=1000)
    fast, slow = Learner(fast_net, config), Learner(slow_net, config)
    assert fast.categorical
    slow.categorical = False
    slow.optimizer = torch.optim.RMSprop(
        slow_net.parameters(), lr=config.learning_rate, alpha=config.rmsprop_alpha,
        eps=config.rmsprop_eps, momentum=config.rmsprop_momentum, foreach=False,
    )  # fmt: skip
    slow._clip_gradients = lambda max_norm: float(
        torch.nn.utils.clip_grad_norm_(slow_net.parameters(), max_norm)
    )
    for _ in range(3):
        batch = stack_unrolls(unrolls)
        a, b = fast.update(batch), slow.update(batch)
        assert a["learner/grad_norm"] > config.grad_clip  # the clip is at work
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    for p, q in zip(fast_net.parameters(), slow_net.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_shared_weights_round_trip(registry) -> None:
    import multiprocessing as mp

    obs_space, act_space = task_spaces(registry["t-cartpole"])
    learner_net = default_network(obs_space, act_space)
    actor_net = default_network(obs_space, act_space)
    weights = SharedWeights(learner_net, mp.get_context("spawn"))
    assert weights.publish(learner_net) == 1
    assert weights.pull(actor_net, -1) == 1
    for a, b in zip(learner_net.parameters(), actor_net.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        next(learner_net.parameters()).add_(1.0)
    assert weights.pull(actor_net, 1) == 1  # not published yet: nothing copied
    assert not torch.equal(next(learner_net.parameters()), next(actor_net.parameters()))
    assert weights.publish(learner_net) == 2 and weights.pull(actor_net, 1) == 2
    torch.testing.assert_close(next(learner_net.parameters()), next(actor_net.parameters()))


def _pool(registry, task_id: str = "t-cartpole", task=None, **kwargs) -> LocalActors:
    task = task or registry[task_id]
    obs_space, act_space = task_spaces(task)
    net = default_network(obs_space, act_space)
    layout = make_layout(task, unroll_length=5, num_envs=2)
    settings = actor_settings(task, net, layout, 0.99, True, seed=0)
    return LocalActors(settings, net, num_actors=2, record_ids=True, **kwargs)


def test_killed_actor_is_replaced_and_no_unroll_is_taken_twice(registry) -> None:
    with _pool(registry) as pool:
        before = pool.next_unrolls(6)
        os.kill(pool.processes[0].pid, signal.SIGKILL)
        after = []
        deadline = time.monotonic() + 60
        while (0, 1) not in {stamp[:2] for stamp in pool.stats.taken}:
            after += pool.next_unrolls(1)
            assert time.monotonic() < deadline, "no unroll from the killed actor's replacement"
        taken = pool.stats.taken
        assert len(taken) == len(set(taken)) == len(before) + len(after)
        assert pool.stats.steps == len(taken) * 5 * 2
        assert pool.stats.restarts == 1 and pool.stats.dropped == 0
        for unroll in before + after:
            assert np.isfinite(unroll["behaviour_log_prob"]).all()


def test_actor_that_cannot_start_raises_with_its_error(registry) -> None:
    task = registry["t-cartpole"]
    broken = dataclasses.replace(task, env={"id": "NoSuchEnv-v0"})
    with _pool(registry, task=broken) as pool:
        with pytest.raises(ActorError, match="actor . failed: .*NoSuchEnv"):
            pool.next_unrolls(1)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="multiple of envs_per_actor"):
        ImpalaConfig(batch_size=10, envs_per_actor=4)
    with pytest.raises(ValueError, match="rho-bar = 0.5.*c-bar = 1.0"):
        ImpalaConfig(clip_rho_threshold=0.5)
    with pytest.raises(ValueError, match="backend"):
        ImpalaConfig(backend="mpi")
    with pytest.raises(ValueError, match="unknown preset"):
        ImpalaConfig.from_preset("nope")
    with pytest.raises(ValueError, match="total_steps must be a positive integer"):
        ImpalaConfig(total_steps=0)
    for name in PRESETS:
        assert ImpalaConfig.from_preset(name).preset == name


def test_parse_args_preset_and_overrides() -> None:
    config = parse_args(["--preset", "classic", "--task", "x", "--batch_size", "64",
                         "--hidden", "32", "32", "--reward_clip", "none", "--resume"])  # fmt: skip
    assert config.envs_per_actor == PRESETS["classic"]["envs_per_actor"]
    assert config.batch_size == 64 and config.hidden == [32, 32]
    assert config.reward_clip is None and config.resume is True and config.task == "x"


def test_unknown_task(registry_path: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(UnknownTaskError, match="unknown task 't-cartpol'; did you mean"):
        train(tiny_config(registry_path, tmp_path / "run", task="t-cartpol"))
    argv = ["--task", "t-nope", "--registry", str(registry_path), "--output_dir", str(tmp_path)]
    assert main(argv) == 2
    assert "unknown task 't-nope'" in capsys.readouterr().err


def test_train_resume_and_kill(registry_path: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    killed = []

    def kill_once(state) -> None:
        if state["learner"].updates == 3 and not killed:
            process = state["actors"].processes[1]
            killed.append(process.pid)
            os.kill(killed[0], signal.SIGKILL)
            process.join(timeout=10)  # dead before the learner asks for its next unrolls

    result = train(tiny_config(registry_path, run), on_update=kill_once, record_ids=True)
    assert result.steps == 640 and result.updates == 10 and result.restarts == 1
    for name in ("metrics.jsonl", "episodes.jsonl", "summary.json", "learning_curve.png"):
        assert (run / name).exists(), name
    assert list((run / "tb").iterdir())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["update"] for m in metrics] == list(range(1, 11))
    assert all(math.isfinite(m["loss/total"]) for m in metrics)

    with pytest.raises(ValueError, match="already holds a run"):
        train(tiny_config(registry_path, run, total_steps=1280))
    resumed = train(tiny_config(registry_path, run, total_steps=1280, resume=True))
    assert resumed.steps == 1280 and resumed.updates == 20
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["update"] for m in metrics] == list(range(1, 21))

    network, meta = load_policy(run)
    assert meta["steps"] == 1280 and meta["task"] == "t-cartpole"
    assert isinstance(network, ActorCritic)


def test_every_unroll_counted_once_through_a_kill(registry_path: Path, tmp_path: Path) -> None:
    seen = {}

    def kill_and_watch(state) -> None:
        actors = state["actors"]
        if state["learner"].updates == 2:
            os.kill(actors.processes[0].pid, signal.SIGKILL)
        seen["taken"], seen["pool_steps"] = list(actors.stats.taken), actors.stats.steps
        seen["learner_steps"] = state["steps"]

    result = train(
        tiny_config(registry_path, tmp_path / "run", total_steps=960, checkpoint_every=10_000),
        on_update=kill_and_watch,
        record_ids=True,
    )
    assert result.restarts == 1
    assert len(seen["taken"]) == len(set(seen["taken"]))
    assert seen["pool_steps"] == seen["learner_steps"] == result.steps == 960


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
    registry_path: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"

    def poison(state) -> None:
        if state["learner"].updates == 6:  # after the checkpoint at 256 steps (update 4)
            with torch.no_grad():
                for p in state["learner"].network.value_head.parameters():
                    p.fill_(math.nan)

    with pytest.raises(NonFiniteLossError, match="non-finite IMPALA loss at update 7.*step-0"):
        train(tiny_config(registry_path, run), on_update=poison)
    network, meta = load_policy(run)  # verifies the checksums too
    assert meta["steps"] == 256
    assert all(torch.isfinite(p).all() for p in network.parameters())


def test_continuous_and_discrete_observation_tasks_train(
    registry_path: Path, tmp_path: Path
) -> None:
    for task in ("t-pendulum", "t-taxi"):
        result = train(tiny_config(registry_path, tmp_path / task, task=task, total_steps=320))
        assert result.steps == 320
        network, meta = load_policy(result.run_dir)
        expected = GaussianMLPActorCritic if task == "t-pendulum" else MLPActorCritic
        assert type(network) is expected and meta["task"] == task


def test_custom_network_fn(registry_path: Path, tmp_path: Path) -> None:
    def wide(observation_space, action_space) -> ActorCritic:
        return MLPActorCritic(observation_space, action_space, hidden=(16,))

    result = train(tiny_config(registry_path, tmp_path / "run", total_steps=320), network_fn=wide)
    network, meta = load_policy(result.run_dir)
    assert meta["hyperparameters"] == {"hidden": [16]}
    with pytest.raises(TypeError, match="must return an ActorCritic"):
        train(tiny_config(registry_path, tmp_path / "bad"), network_fn=lambda o, a: None)


# ---------------------------------------------------------------------------------------------
# The expert
# ---------------------------------------------------------------------------------------------


def test_trained_policy_as_registry_expert(registry_path: Path, tmp_path: Path) -> None:
    from gato.tasks.experts import make_expert

    result = train(tiny_config(registry_path, tmp_path / "run", total_steps=320))
    policy_dir = export_policy(result.run_dir, tmp_path / "experts" / "t-cartpole")
    assert sorted(p.name for p in policy_dir.iterdir()) == [
        "MANIFEST.json", "policy.json", "policy.pt",
    ]  # fmt: skip
    text = REGISTRY.replace(
        'action = { kind = "discrete", num_values = 2 }\nepisode_limit = 500',
        'action = { kind = "discrete", num_values = 2 }\nepisode_limit = 500\nexpert = "impala"\n'
        'expert_params = { checkpoint = "experts/t-cartpole" }',
        1,
    )
    text += (
        '\n[tasks.t-acrobot]\nsuite = "gym"\nenv = { id = "Acrobot-v1" }\n'
        "observation = { continuous_observations = { shape = [6] } }\n"
        'action = { kind = "discrete", num_values = 3 }\nepisode_limit = 50\n'
        'expert = "impala"\nexpert_params = { checkpoint = "experts/t-cartpole" }\n'
    )
    path = tmp_path / "tasks.toml"
    path.write_text(text)
    registry = parse_registry(text, root=tmp_path, path=path)
    task = registry["t-cartpole"]
    expert = make_expert(task, seed=3)
    env = make_env(task)
    obs = env.reset(seed=3)
    for _ in range(5):
        action = expert.act(obs, env)
        assert action in (0, 1)
        obs = env.step(action).observation
    env.close()
    sampler = make_expert(dataclasses.replace(task, expert_params={
        "checkpoint": "experts/t-cartpole", "greedy": False}), seed=0)  # fmt: skip
    assert sampler.act(obs, None) in (0, 1)
    with pytest.raises(ValueError, match="observations of shape"):
        make_expert(registry["t-acrobot"])
    with pytest.raises(FileNotFoundError, match="no IMPALA policy"):
        make_expert(dataclasses.replace(task, expert_params={"checkpoint": "nowhere"}))

    from gato.data.__main__ import main as data_main

    out = tmp_path / "episodes"
    argv = ["collect", "--registry", str(path), "--task", "t-cartpole", "--episodes", "2",
            "--output", str(out), "--no-filter", "--quiet"]  # fmt: skip
    assert data_main(argv) == 0
    from datasets import load_from_disk

    episodes = load_from_disk(str(out))
    assert len(episodes) == 2 and set(episodes[0]["discrete_actions"]) <= {0, 1}


# ---------------------------------------------------------------------------------------------
# Slow: Ray, and learning for real
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_backend_two_actors_with_a_kill(registry_path: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _system_config={"worker_niceness": 0})  # fmt: skip
    try:
        killed = []

        def kill_once(state) -> None:
            if state["learner"].updates == 3 and not killed:
                killed.append(True)
                ray.kill(state["actors"].handles[0], no_restart=True)

        result = train(
            tiny_config(registry_path, tmp_path / "run", backend="ray", total_steps=960),
            on_update=kill_once,
            record_ids=True,
        )
        assert result.steps == 960 and result.restarts == 1
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_cartpole_reaches_475(registry_path: Path, tmp_path: Path) -> None:
    config = ImpalaConfig.from_preset(
        "classic", task="t-cartpole", registry=str(registry_path),
        output_dir=str(tmp_path / "run"), total_steps=1_500_000, stop_at_return=475.0,
        progress=False,
    )  # fmt: skip
    train(config)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps_to_threshold"] is not None, summary
