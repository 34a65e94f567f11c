"""Actor-critic networks for IMPALA: one forward gives the policy's parameters and the value.

The base class `ActorCritic` is what the learner and the actors know; a custom network (PathNet's
modular network, for instance) derives from it and is passed to `gato.rl.impala.train` as
`network_fn(observation_space, action_space) -> ActorCritic`. The contract:

- `forward(obs)`: obs `[B, *obs_shape]` as the environment gives it (uint8 images, float32
  vectors, int64 discrete observations) -> `(params, value)`, value `[B]`; params are the
  logits `[B, A]` for a `Discrete(A)` action space, the mean `[B, A]` for a `Box((A,))` one.
- `policy(obs)`: the params alone (optional override; actors call it to act, and a network
  with separate heads can skip the value there).
- `distribution(params)`: the action distribution: `Categorical(logits)`, or for continuous
  actions a diagonal Gaussian with the network's learned, state-independent log-std.
- `hyperparameters()`: keyword arguments that rebuild the same architecture as
  `cls(observation_space, action_space, **hyperparameters())`, so checkpoints and exported
  experts can be restored without the code that trained them.

Concrete networks: `MLPActorCritic` (vector or discrete observations, discrete actions),
`GaussianMLPActorCritic` (continuous actions), `AtariCNNActorCritic` (uint8 images, the shallow
convolutional model of the IMPALA paper); `default_network` picks one from the spaces.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal


def _check_action_space(action_space: gym.Space) -> None:
    if isinstance(action_space, gym.spaces.Discrete):
        if int(action_space.start) != 0:
            raise ValueError(f"discrete actions must start at 0, got start={action_space.start}")
        return
    if isinstance(action_space, gym.spaces.Box):
        if len(action_space.shape) != 1:
            raise ValueError(
                f"continuous actions must be a vector Box((A,)), got shape {action_space.shape}"
            )
        return
    raise ValueError(f"unsupported action space {action_space}: need Discrete or Box((A,))")


def _orthogonal(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Base of IMPALA's networks: policy parameters and value from one observation batch.

    Args:
        observation_space: the observations' gymnasium space.
        action_space: `Discrete(A)` or `Box((A,))`.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__()
        _check_action_space(action_space)
        self.observation_space = observation_space
        self.action_space = action_space
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.action_dim = int(action_space.n) if self.discrete else int(action_space.shape[0])

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """obs [B, *obs_shape] -> (params [B, A], value [B])."""
        raise NotImplementedError

    def policy(self, obs: Tensor) -> Tensor:
        """obs [B, *obs_shape] -> params [B, A] alone: what an actor needs to act. Networks
        whose value costs extra override it to skip the value; the default runs `forward`."""
        return self.forward(obs)[0]

    def distribution(self, params: Tensor) -> Distribution:
        """The action distribution of `params` [B, A]; batch shape [B]."""
        if self.discrete:
            return Categorical(logits=params)
        raise NotImplementedError(f"{type(self).__name__} must define distribution()")

    def greedy(self, params: Tensor) -> Tensor:
        """The most likely action: argmax of the logits, or the Gaussian's mean. [B] or [B, A]."""
        return params.argmax(-1) if self.discrete else params

    def hyperparameters(self) -> dict[str, Any]:
        """Keyword arguments rebuilding this architecture (JSON-serialisable)."""
        return {}


def network_target(network: ActorCritic) -> str:
    """'module:QualifiedName' of a network's class, what `build_network` imports."""
    cls = type(network)
    return f"{cls.__module__}:{cls.__qualname__}"


def build_network(
    target: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    hyperparameters: dict[str, Any] | None = None,
) -> ActorCritic:
    """Rebuild a network from `network_target` and its `hyperparameters()`."""
    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise ValueError(f"network target must be 'module:ClassName', got {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import network {target!r}: {err}") from None
    if not (isinstance(obj, type) and issubclass(obj, ActorCritic)):
        raise ValueError(f"network {target!r} is not an ActorCritic subclass")
    return obj(observation_space, action_space, **(hyperparameters or {}))


# ---------------------------------------------------------------------------------------------
# Observation encoders
# ---------------------------------------------------------------------------------------------


class VectorEncoder(nn.Module):
    """Vector observations [B, D] (float) or discrete ones [B, D] (int, one-hot each) -> [B, F]."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__()
        if isinstance(observation_space, gym.spaces.MultiDiscrete):
            if len(observation_space.shape) != 1:
                raise ValueError(f"discrete observations must be a vector, got {observation_space}")
            nvec = [int(n) for n in observation_space.nvec]
            self.register_buffer("offsets", torch.tensor([0, *np.cumsum(nvec)[:-1].tolist()]))
            self.one_hot_size = int(sum(nvec))
            self.out_features = self.one_hot_size
        elif isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1:
            self.offsets = None
            self.out_features = int(observation_space.shape[0])
        else:
            raise ValueError(
                f"a vector network needs Box((D,)) or MultiDiscrete observations, got "
                f"{observation_space}"
            )

    def forward(self, obs: Tensor) -> Tensor:
        if self.offsets is None:
            return obs.float()
        # One-hot of every component in one flat table: index + the component's offset.
        hot = torch.zeros(obs.shape[0], self.one_hot_size, device=obs.device)
        return hot.scatter_(1, obs.long() + self.offsets, 1.0)


class _NumpyTanh(torch.autograd.Function):
    """tanh by numpy on CPU float tensors; the gradient (1 - y^2) by torch from the output."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = torch.from_numpy(np.tanh(x.detach().numpy()))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.addcmul(grad, grad, y * y, value=-1.0)  # grad * (1 - y^2)


class Tanh(nn.Tanh):
    """`nn.Tanh` (same module, no state) computed by numpy for CPU float32/float64 tensors.

    On the x86 CPUs this was measured on, torch's tanh kernel is about 10 times slower than
    numpy's (2.5 against 0.23 ns per float32 element) and was the largest single cost of an
    MLP's update and of an actor's forward pass; numpy's result is within one ulp of the exact
    value. Other devices and dtypes use `torch.tanh`.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            return torch.tanh(x)
        if x.requires_grad and torch.is_grad_enabled():
            return _NumpyTanh.apply(x)
        return torch.from_numpy(np.tanh(x.detach().numpy()))


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [_orthogonal(nn.Linear(fan_in, fan_out), math.sqrt(2.0)), Tanh()]
    return nn.Sequential(*layers)


class MLPActorCritic(ActorCritic):
    """Discrete actions from vector or discrete observations: separate tanh MLPs for the policy
    and the value (separate trunks keep the value's large gradients out of the policy).

    Args:
        hidden: widths of the hidden layers.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        hidden: Sequence[int] = (64, 64),
    ) -> None:
        super().__init__(observation_space, action_space)
        if not self.discrete:
            raise ValueError("MLPActorCritic needs Discrete actions; use GaussianMLPActorCritic")
        self.hidden = [int(h) for h in hidden]
        self.encoder = VectorEncoder(observation_space)
        sizes = [self.encoder.out_features, *self.hidden]
        self.policy_trunk, self.value_trunk = _mlp(sizes), _mlp(sizes)
        self.policy_head = _orthogonal(nn.Linear(sizes[-1], self.action_dim), 0.01)
        self.value_head = _orthogonal(nn.Linear(sizes[-1], 1), 1.0)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = self.encoder(obs)
        logits = self.policy_head(self.policy_trunk(x))
        value = self.value_head(self.value_trunk(x)).squeeze(-1)
        return logits, value

    def policy(self, obs: Tensor) -> Tensor:
        return self.policy_head(self.policy_trunk(self.encoder(obs)))

    def hyperparameters(self) -> dict[str, Any]:
        return {"hidden": self.hidden}


class GaussianMLPActorCritic(ActorCritic):
    """Continuous actions: a diagonal Gaussian whose mean an MLP gives and whose log-std is a
    learned vector (state-independent); the value from a separate MLP.

    Sampled actions are unbounded; the environment adapters clip them to [-1, 1], and the
    learner scores the unclipped sample, so the importance ratios stay exact.

    Args:
        hidden: widths of the hidden layers.
        log_std_init: initial log standard deviation of every action dimension.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        hidden: Sequence[int] = (64, 64),
        log_std_init: float = -0.5,
    ) -> None:
        super().__init__(observation_space, action_space)
        if self.discrete:
            raise ValueError("GaussianMLPActorCritic needs Box actions; use MLPActorCritic")
        self.hidden = [int(h) for h in hidden]
        self.log_std_init = float(log_std_init)
        self.encoder = VectorEncoder(observation_space)
        sizes = [self.encoder.out_features, *self.hidden]
        self.policy_trunk, self.value_trunk = _mlp(sizes), _mlp(sizes)
        self.mean_head = _orthogonal(nn.Linear(sizes[-1], self.action_dim), 0.01)
        self.value_head = _orthogonal(nn.Linear(sizes[-1], 1), 1.0)
        self.log_std = nn.Parameter(torch.full((self.action_dim,), self.log_std_init))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = self.encoder(obs)
        mean = self.mean_head(self.policy_trunk(x))
        value = self.value_head(self.value_trunk(x)).squeeze(-1)
        return mean, value

    def policy(self, obs: Tensor) -> Tensor:
        return self.mean_head(self.policy_trunk(self.encoder(obs)))

    def distribution(self, params: Tensor) -> Distribution:
        std = self.log_std.clamp(-5.0, 2.0).exp().expand_as(params)
        return Independent(Normal(params, std), 1)

    def hyperparameters(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "log_std_init": self.log_std_init}


class AtariCNNActorCritic(ActorCritic):
    """The IMPALA paper's shallow model for stacked frames: uint8 [B, H, W, C] (channels last,
    as the Atari adapter gives them) -> conv 16 8x8/4 -> conv 32 4x4/2 -> fc 256 -> logits,
    value. Discrete actions.

    Args:
        hidden: width of the fully connected layer.
    """

    def __init__(
        self, observation_space: gym.Space, action_space: gym.Space, hidden: int = 256
    ) -> None:
        super().__init__(observation_space, action_space)
        if not self.discrete:
            raise ValueError("AtariCNNActorCritic needs Discrete actions")
        shape = observation_space.shape
        if not isinstance(observation_space, gym.spaces.Box) or len(shape) != 3:
            raise ValueError(f"AtariCNNActorCritic needs [H, W, C] images, got {observation_space}")
        height, width, channels = shape
        if min(height, width) < 36:
            raise ValueError(f"AtariCNNActorCritic needs images of at least 36x36, got {shape}")
        self.hidden = int(hidden)
        self.convs = nn.Sequential(
            _orthogonal(nn.Conv2d(channels, 16, 8, stride=4), math.sqrt(2.0)),
            nn.ReLU(),
            _orthogonal(nn.Conv2d(16, 32, 4, stride=2), math.sqrt(2.0)),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, height, width)).shape[1]
        self.fc = nn.Sequential(
            _orthogonal(nn.Linear(flat, self.hidden), math.sqrt(2.0)), nn.ReLU()
        )
        self.policy_head = _orthogonal(nn.Linear(self.hidden, self.action_dim), 0.01)
        self.value_head = _orthogonal(nn.Linear(self.hidden, 1), 1.0)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = obs.permute(0, 3, 1, 2).float() / 255.0  # (B, C, H, W) in [0, 1]
        x = self.fc(self.convs(x))
        return self.policy_head(x), self.value_head(x).squeeze(-1)

    def hyperparameters(self) -> dict[str, Any]:
        return {"hidden": self.hidden}


def default_network(
    observation_space: gym.Space, action_space: gym.Space, hidden: Sequence[int] = (64, 64)
) -> ActorCritic:
    """The network for the spaces: the CNN for images, else an MLP (Gaussian for Box actions)
    with hidden layers `hidden`."""
    _check_action_space(action_space)
    if isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3:
        return AtariCNNActorCritic(observation_space, action_space)
    if isinstance(action_space, gym.spaces.Discrete):
        return MLPActorCritic(observation_space, action_space, hidden)
    return GaussianMLPActorCritic(observation_space, action_space, hidden)


__all__ = [
    "ActorCritic",
    "AtariCNNActorCritic",
    "GaussianMLPActorCritic",
    "MLPActorCritic",
    "Tanh",
    "VectorEncoder",
    "build_network",
    "default_network",
    "network_target",
]
