"""Stepping environments into unrolls: the layout of an unroll, and the runner that fills one.

An actor (a local process, `gato.rl.actors`, or a Ray actor, `gato.rl.ray_backend`) steps
`num_envs` environments with a CPU copy of the policy through an `EnvRunner` and hands the
learner unrolls of `unroll_length` steps, time-major; `UnrollLayout` lists their fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gato.rl.networks import ActorCritic
from gato.rl.spaces import observation_column
from gato.tasks.envs import make_env
from gato.tasks.registry import TaskSpec

__all__ = [
    "EnvRunner",
    "Unroll",
    "UnrollLayout",
    "make_layout",
    "sample_categorical",
    "stack_unrolls",
]

Unroll = dict[str, np.ndarray]
"""One actor's unroll: field -> array, time-major (see `UnrollLayout.fields`)."""


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnrollLayout:
    """Shapes of one actor's unroll (T steps of N environments).

    Attributes:
        unroll_length: T, steps per unroll.
        num_envs: N, environments per actor (columns of the unroll).
        obs_shape, obs_dtype: one observation (numpy dtype name).
        action_shape, action_dtype: one action: () int64 for discrete, (A,) float32 else.
    """

    unroll_length: int
    num_envs: int
    obs_shape: tuple[int, ...]
    obs_dtype: str
    action_shape: tuple[int, ...]
    action_dtype: str

    def fields(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Field -> (shape, dtype).

        obs [T + 1, N, *obs]: the observation before each step, and the one after the last
            (the bootstrap observation); after an episode ends, the next episode's first.
        action [T, N, *action]; behaviour_log_prob [T, N]: log mu(action | obs).
        reward [T, N]: the reward, plus discount * V(final observation) where an episode was
            truncated by a time limit (so the learner can cut the trace there).
        done [T, N]: the episode ended after this step (terminated or truncated).
        episode_return, episode_length [T, N]: of the episode that ended there (NaN, 0 else).
        stamp [3]: (actor, generation, seq), written after everything else.
        policy_version [1]: the weights' version that acted.
        """
        T, N = self.unroll_length, self.num_envs
        return {
            "obs": ((T + 1, N, *self.obs_shape), self.obs_dtype),
            "action": ((T, N, *self.action_shape), self.action_dtype),
            "behaviour_log_prob": ((T, N), "float32"),
            "reward": ((T, N), "float32"),
            "done": ((T, N), "bool"),
            "episode_return": ((T, N), "float32"),
            "episode_length": ((T, N), "int32"),
            "stamp": ((3,), "int64"),
            "policy_version": ((1,), "int64"),
        }

    def allocate(self, shared: bool) -> dict[str, torch.Tensor]:
        """Zeroed tensors for one unroll, in shared memory when `shared`."""
        out = {}
        for name, (shape, dtype) in self.fields().items():
            tensor = torch.from_numpy(np.zeros(shape, dtype=dtype))
            out[name] = tensor.share_memory_() if shared else tensor
        return out

    @property
    def steps(self) -> int:
        """Environment steps in one unroll."""
        return self.unroll_length * self.num_envs


def make_layout(task: TaskSpec, unroll_length: int, num_envs: int) -> UnrollLayout:
    """The unroll layout of a task's observation column and action."""
    if unroll_length < 1 or num_envs < 1:
        raise ValueError(
            f"unroll_length and num_envs must be at least 1, got {unroll_length}, {num_envs}"
        )
    spec = task.observation[observation_column(task)]
    if task.action.kind == "discrete":
        action_shape, action_dtype = (), "int64"
    else:
        action_shape, action_dtype = tuple(task.action.shape), "float32"
    return UnrollLayout(
        unroll_length, num_envs, tuple(spec.shape), spec.dtype, action_shape, action_dtype
    )


def stack_unrolls(unrolls: Sequence[Unroll]) -> dict[str, torch.Tensor]:
    """Unrolls of N_i columns each -> one batch of sum(N_i) columns (time-major, [T(+1), B, ...]).

    Per-unroll fields (stamp, policy_version) are dropped; the caller keeps those.
    """
    if not unrolls:
        raise ValueError("stack_unrolls needs at least one unroll")
    keys = [k for k in unrolls[0] if k not in ("stamp", "policy_version")]
    # numpy first: unrolls from Ray are read-only arrays, and the concatenation is a fresh copy.
    return {k: torch.from_numpy(np.concatenate([u[k] for u in unrolls], axis=1)) for k in keys}


# ---------------------------------------------------------------------------------------------
# Stepping environments
# ---------------------------------------------------------------------------------------------


def sample_categorical(
    logits: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One draw from each row's `Categorical(logits=row)`: (actions (N,) int64, their
    log-probabilities (N,) float32), logits (N, A) float32.

    Inverse CDF of the softmax: u ~ U[0, sum exp z) with z = logits - max; the action is the
    number of cumulative sums <= u, so an action of probability 0 is never drawn. A few numpy
    operations on the whole batch: for the small batches an actor acts on, building, sampling
    and scoring a `torch.distributions.Categorical` took several times longer (about 300
    against 80 microseconds for 64 rows on the 2-core benchmark machine).
    """
    z = logits - logits.max(axis=1, keepdims=True)
    cumulative = np.exp(z, dtype=np.float64).cumsum(axis=1)  # (N, A)
    total = cumulative[:, -1]
    u = rng.random(len(total)) * total
    actions = (cumulative <= u[:, None]).sum(axis=1)
    np.minimum(actions, logits.shape[1] - 1, out=actions)  # u < total; rounding aside
    log_probs = np.take_along_axis(z, actions[:, None], axis=1)[:, 0] - np.log(total)
    return actions.astype(np.int64, copy=False), log_probs.astype(np.float32, copy=False)


class EnvRunner:
    """Steps `num_envs` environments of one task with a policy, one unroll at a time.

    Environments reset themselves when an episode ends; environment i is first reset with seed
    `seed + i` and then continues its own random stream, so a runner's experience is
    reproducible given its seed and the weights it is handed (the actions of a network with the
    default categorical distribution are drawn from a numpy generator seeded with `seed`; other
    distributions sample with torch's generator).

    The hot loop does per environment only what the environment needs (its step, its
    observation written into the unroll's row) and the rest once per step for all environments:
    one policy forward under `torch.inference_mode`, one draw of every action, one write of the
    rewards, the episode counters kept as arrays.
    """

    def __init__(
        self,
        task: TaskSpec,
        network: ActorCritic,
        layout: UnrollLayout,
        seed: int,
        discount: float,
        bootstrap_truncated: bool = True,
    ) -> None:
        self.task, self.network, self.layout = task, network, layout
        self.column = observation_column(task)
        self.discount = float(discount)
        self.bootstrap_truncated = bootstrap_truncated
        self.discrete = task.action.kind == "discrete"
        # Checked once here rather than every step: the default Categorical over logits is
        # sampled in numpy (`sample_categorical`); any other distribution goes through the
        # network's own `distribution`.
        self.numpy_categorical = (
            self.discrete
            and getattr(network, "discrete", False)
            and type(network).distribution is ActorCritic.distribution
        )
        self.rng = np.random.default_rng([seed, 0x1A7A])  # independent of the envs' seeds
        self.envs = [make_env(task) for _ in range(layout.num_envs)]
        self.obs = np.stack(
            [env.reset(seed=seed + i)[self.column] for i, env in enumerate(self.envs)]
        )  # (N, *obs)
        self.returns = np.zeros(layout.num_envs, dtype=np.float64)  # of the running episodes
        self.lengths = np.zeros(layout.num_envs, dtype=np.int64)
        self.steps = 0

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs (N, *obs) -> (actions (N, *action), log mu(action | obs) (N,) float32)."""
        network = self.network
        with torch.inference_mode():
            params = network.policy(torch.from_numpy(obs))
            if not self.numpy_categorical:
                dist = network.distribution(params)
                sample = dist.sample()
                return sample.numpy(), dist.log_prob(sample).numpy()
            logits = params.numpy()
        return sample_categorical(logits, self.rng)

    def fill(self, out: Unroll) -> None:
        """Write one unroll into `out` (arrays shaped as `layout.fields()`, stamp excepted)."""
        T = self.layout.unroll_length
        obs, action, log_prob = out["obs"], out["action"], out["behaviour_log_prob"]
        reward, done = out["reward"], out["done"]
        ep_return, ep_length = out["episode_return"], out["episode_length"]
        ep_return.fill(math.nan)
        ep_length.fill(0)
        done.fill(False)
        obs[0] = self.obs
        envs, column, discrete = self.envs, self.column, self.discrete
        returns, lengths = self.returns, self.lengths
        bootstrap = self.bootstrap_truncated
        for t in range(T):
            actions, log_probs = self.act(obs[t])
            action[t] = actions
            log_prob[t] = log_probs
            env_actions = actions.tolist() if discrete else list(actions)
            rewards = []
            ended: list[int] = []
            truncated_final: list[tuple[int, np.ndarray]] = []
            next_obs = obs[t + 1]  # (N, *obs): each environment writes its own row
            for i, env in enumerate(envs):
                step = env.step(env_actions[i])
                rewards.append(step.reward)
                if step.terminated or step.truncated:
                    ended.append(i)
                    if bootstrap and step.truncated and not step.terminated:
                        truncated_final.append((i, step.observation[column]))
                    next_obs[i] = env.reset()[column]
                else:
                    next_obs[i] = step.observation[column]
            r = np.array(rewards, dtype=np.float64)
            reward[t] = r
            returns += r
            lengths += 1
            if ended:
                done[t, ended] = True
                ep_return[t, ended] = returns[ended]
                ep_length[t, ended] = lengths[ended]
                returns[ended] = 0.0
                lengths[ended] = 0
            if truncated_final:
                # A time limit is not the task's end: the return continues beyond it, which
                # the value of the final observation estimates. Folding it into the reward lets
                # the learner cut the trace at every episode boundary alike.
                index = [i for i, _ in truncated_final]
                final = torch.from_numpy(np.stack([o for _, o in truncated_final]))
                with torch.inference_mode():
                    values = self.network(final)[1].numpy()
                reward[t, index] += self.discount * values
        self.obs = obs[T].copy()
        self.steps += T * self.layout.num_envs

    def close(self) -> None:
        for env in self.envs:
            env.close()
