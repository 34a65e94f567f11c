"""PathNet pathways as the policy network of the IMPALA learner (`gato.rl.impala`).

`PathNetActorCritic` is a `gato.rl.networks.ActorCritic`: vector observations -> the summed
modules of one pathway through an L x M PathNet of linear ReLU modules -> a policy head (logits,
or a Gaussian mean with a learned log-std) and a value head, both the task's own. Its genotype and
its frozen modules are constructor arguments (`hyperparameters()`), so IMPALA's actors rebuild the
same network, and frozen modules get `requires_grad = False`: the learner's RMSProp (no weight
decay) never receives a gradient for them, so they stay bit-identical.

Transfer (`run_rl_transfer`): task A is learnt on a random pathway; for task B the three ways of
`gato.pathnet.supervised` (pathnet: A's pathway frozen, the rest re-initialised, B's pathway
reads `reuse` of A's modules per layer and fresh ones; finetune: all of A's weights trainable,
same pathway; scratch: a new network). The cost is the environment steps until the moving mean
return reaches `target_return`.

Deviation from the paper: no tournament in RL. Each pathway of a tournament would need its own
IMPALA run (actor processes, a learner) for T updates; on a 2-core machine a population is out of
reach, so each task uses one pathway (the paper's A3C workers each evolve their own).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gato.files import atomic_write_json, atomic_write_text
from gato.pathnet.evolution import active_modules, random_genotype, validate_genotype
from gato.pathnet.report import markdown_table, spread
from gato.rl.networks import ActorCritic, VectorEncoder

__all__ = ["PathNetActorCritic", "RLTransferConfig", "run_rl_transfer"]


class PathNetActorCritic(ActorCritic):
    """A pathway through L x M linear modules, then the task's policy and value heads.

    Args:
        layers, modules, active, width: L, M, N and units per module.
        genotype: (L, N) module indices of the pathway (default: modules 0..N-1 of every layer).
        frozen: per layer, the module indices that do not train.
        log_std_init: initial log-std of Gaussian actions (Box action spaces).
    """

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        layers: int = 2,
        modules: int = 6,
        active: int = 2,
        width: int = 32,
        genotype: list[list[int]] | None = None,
        frozen: list[list[int]] | None = None,
        log_std_init: float = -0.5,
    ) -> None:
        super().__init__(observation_space, action_space)
        from gato.pathnet.network import PathNet, PathNetConfig

        self.encoder = VectorEncoder(observation_space)
        self.net_config = PathNetConfig(
            layers=layers,
            modules=modules,
            active=active,
            width=width,
            input_shape=(self.encoder.out_features,),
        )
        self.trunk = PathNet(self.net_config)
        if genotype is None:
            genotype = [list(range(active)) for _ in range(layers)]
        self.genotype = validate_genotype(genotype, layers, active, modules)
        self.frozen_rows = [sorted({int(m) for m in row}) for row in (frozen or [])]
        if frozen is not None and len(self.frozen_rows) != layers:
            raise ValueError(f"frozen must list the frozen modules of each of the {layers} layers")
        for layer, row in enumerate(self.frozen_rows):
            for m in row:
                if not 0 <= m < modules:
                    raise ValueError(f"frozen module {m} of layer {layer} is not in [0, {modules})")
                self.trunk.frozen.add((layer, m))
                self.trunk.layers[layer][m].requires_grad_(False)
        self.policy_head = nn.Linear(width, self.action_dim)
        self.value_head = nn.Linear(width, 1)
        # Small policy outputs at the start: near-uniform actions, as the project's MLP networks.
        nn.init.orthogonal_(self.policy_head.weight, 0.01)
        nn.init.zeros_(self.policy_head.bias)
        self.log_std_init = float(log_std_init)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((self.action_dim,), self.log_std_init))

    def _features(self, obs: Tensor) -> Tensor:
        x = self.encoder(obs)  # (B, D)
        for layer, indices in zip(self.trunk.layers, active_modules(self.genotype), strict=True):
            x = sum(torch.relu(layer[m](x)) for m in indices)  # (B, width)
        return x

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """obs [B, D] -> (logits or mean [B, A], value [B])."""
        h = self._features(obs)
        return self.policy_head(h), self.value_head(h).squeeze(-1)

    def distribution(self, params: Tensor) -> torch.distributions.Distribution:
        if self.discrete:
            return super().distribution(params)
        std = self.log_std.clamp(-5.0, 2.0).exp().expand_as(params)
        return torch.distributions.Independent(torch.distributions.Normal(params, std), 1)

    def hyperparameters(self) -> dict[str, Any]:
        cfg = self.net_config
        return {
            "layers": cfg.layers,
            "modules": cfg.modules,
            "active": cfg.active,
            "width": cfg.width,
            "genotype": self.genotype.tolist(),
            "frozen": self.frozen_rows if self.frozen_rows else None,
            "log_std_init": self.log_std_init,
        }

    def frozen_state(self) -> dict[str, Tensor]:
        """Copies of the frozen modules' tensors."""
        return {name: p.detach().clone() for name, p in self.trunk.frozen_state()}


# ---------------------------------------------------------------------------------------------
# The transfer experiment
# ---------------------------------------------------------------------------------------------


@dataclass
class RLTransferConfig:
    """Task A then task B with IMPALA, PathNet transfer against scratch and fine-tuning."""

    task_a: str = "dmc-cartpole-balance"
    """First task (registry id)."""
    task_b: str = "dmc-cartpole-swingup"
    """Second task, with the same observation and action spaces."""
    steps_a: int = 300_000
    """Environment steps on task A."""
    steps_b: int = 300_000
    """Most environment steps on task B (each way)."""
    target_return: float = 200.0
    """B is learnt when the moving mean return reaches this."""
    return_window: int = 20
    """Episodes in the moving mean."""
    seeds: int = 3
    """Seeds (0, 1, ...)."""
    layers: int = 2
    """L: layers of modules."""
    modules: int = 6
    """M: modules per layer."""
    active: int = 2
    """N: modules of a pathway per layer."""
    width: int = 32
    """Units per module."""
    reuse: int = 1
    """Frozen modules of A that B's pathway reads per layer (pathnet way)."""
    preset: str = "continuous"
    """IMPALA preset (`gato.rl.impala.PRESETS`)."""
    num_actors: int = 1
    """Actor processes."""
    output_dir: str = "runs/pathnet/rl"
    """Where results go."""
    ways: list[str] = field(default_factory=lambda: ["pathnet", "finetune", "scratch"])
    """Ways of learning B."""

    def __post_init__(self) -> None:
        if not 0 <= self.reuse <= self.active:
            raise ValueError(f"reuse must lie in [0, active={self.active}]")
        if self.modules < self.active + (self.active - self.reuse):
            raise ValueError("modules leaves too few fresh modules for B's pathway")
        unknown = set(self.ways) - {"pathnet", "finetune", "scratch"}
        if unknown:
            raise ValueError(f"unknown ways {sorted(unknown)}")


def _impala_run(
    config: RLTransferConfig, task: str, steps: int, seed: int, out: Path, build, stop: bool
):
    from gato.rl.impala import ImpalaConfig, train

    impala_cfg = ImpalaConfig.from_preset(
        config.preset,
        task=task,
        total_steps=steps,
        seed=seed,
        num_actors=config.num_actors,
        output_dir=str(out),
        stop_at_return=config.target_return if stop else None,
        return_window=config.return_window,
        checkpoint_every=max(steps, 1),
        progress=True,
    )
    holder: dict[str, Any] = {}

    def network_fn(observation_space, action_space):
        holder["net"] = build(observation_space, action_space)
        return holder["net"]

    result = train(impala_cfg, network_fn)
    return result, holder["net"]


def _steps_to_target(returns: list[tuple[int, float]], target: float, window: int) -> int | None:
    recent: list[float] = []
    for step, value in returns:
        recent = (recent + [value])[-window:]
        if len(recent) == window and np.mean(recent) >= target:
            return step
    return None


def run_rl_transfer(
    config: RLTransferConfig, progress: bool = True, command: str | None = None
) -> dict[str, Any]:
    """Every seed: A, then B each way; writes result.json and result.md."""
    start = time.perf_counter()
    out = Path(config.output_dir)
    records = []
    shape = dict(
        layers=config.layers, modules=config.modules, active=config.active, width=config.width
    )
    for seed in range(config.seeds):
        rng = np.random.default_rng(seed)
        g_a = random_genotype(config.layers, config.active, config.modules, rng)

        def build_a(obs, act, g_a=g_a):
            return PathNetActorCritic(obs, act, genotype=g_a.tolist(), **shape)

        _, net_a = _impala_run(
            config, config.task_a, config.steps_a, seed, out / f"s{seed}/A", build_a, False
        )
        record: dict[str, Any] = {"seed": seed, "genotype_a": g_a.tolist(), "B": {}}
        for way in config.ways:
            build = _builder(way, net_a, g_a, config, shape, rng)
            result, net_b = _impala_run(
                config, config.task_b, config.steps_b, seed, out / f"s{seed}/B-{way}", build, True
            )
            steps = _steps_to_target(
                result.episode_returns, config.target_return, config.return_window
            )
            record["B"][way] = {
                "steps_to_target": steps,
                "steps": result.steps,
                "final_mean_return": float(np.mean([r for _, r in result.episode_returns][-20:]))
                if result.episode_returns
                else None,
            }
        records.append(record)
    summary = {}
    for way in config.ways:
        costs = [
            r["B"][way]["steps_to_target"] or config.steps_b for r in records
        ]  # not reached: the budget (a lower bound)
        summary[way] = {
            "steps": asdict(spread(costs)),
            "not_reached": sum(r["B"][way]["steps_to_target"] is None for r in records),
        }
    rows = [
        [way, f"{s['steps']['mean']:,.0f} ± {s['steps']['std']:,.0f}", s["not_reached"]]
        for way, s in summary.items()
    ]
    table = markdown_table(["way", "B steps to target", "not reached"], rows)
    report = {
        "command": command,
        "config": asdict(config),
        "seconds": time.perf_counter() - start,
        "records": records,
        "summary": summary,
        "table": table,
    }
    atomic_write_json(out / "result.json", report)
    atomic_write_text(out / "result.md", table + "\n")
    return report


def _builder(way, net_a, g_a, config, shape, rng):
    """network_fn for task B under `way`."""
    a_state = {k: v.clone() for k, v in net_a.trunk.state_dict().items()}
    if way == "scratch":
        return lambda obs, act: PathNetActorCritic(obs, act, genotype=g_a.tolist(), **shape)
    if way == "finetune":

        def build_finetune(obs, act):
            net = PathNetActorCritic(obs, act, genotype=g_a.tolist(), **shape)
            net.trunk.load_state_dict(a_state)
            return net

        return build_finetune
    used = active_modules(g_a)
    genotype = []
    for row in used:
        fresh = [m for m in range(config.modules) if m not in row]
        picks = list(row[: config.reuse]) + fresh[: config.active - config.reuse]
        genotype.append(picks + picks[:1] * (config.active - len(picks)))

    def build_pathnet(obs, act):
        net = PathNetActorCritic(obs, act, genotype=genotype, frozen=used, **shape)
        net.trunk.load_state_dict(a_state)
        net.trunk.reinitialise_unfrozen(torch.Generator().manual_seed(int(rng.integers(1 << 30))))
        return net

    return build_pathnet
