"""PathNet pathways as the policy network of the IMPALA learner (`gato.rl.impala`).

`PathNetActorCritic` is a `gato.rl.networks.ActorCritic`: vector observations -> the summed
modules of one pathway through an L x M PathNet of linear ReLU modules -> a policy head (logits,
or a Gaussian mean with a learned log-std) and a value head, both the task's own. Its genotype and
its frozen modules are constructor arguments (`hyperparameters()`), so IMPALA's actors rebuild the
same network, and frozen modules get `requires_grad = False`: the learner's RMSProp (no weight
decay) never receives a gradient for them, so they stay bit-identical.

Transfer (`run_rl_transfer`): task A is learnt on a random pathway; for task B the three ways of
`gato.experiments.pathnet.supervised` (pathnet: A's pathway frozen, the rest re-initialised, B's
pathway
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

from gato.experiments.pathnet.evolution import active_modules, random_genotype, validate_genotype
from gato.experiments.pathnet.report import markdown_table, plot_speedups, speedup, spread
from gato.files import atomic_write_json, atomic_write_text
from gato.rl.networks import ActorCritic, VectorEncoder

__all__ = ["PathNetActorCritic", "RLTransferConfig", "run_rl_transfer", "steps_to_target"]


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
        from gato.experiments.pathnet.network import PathNet, PathNetConfig

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

REGISTRY = Path(__file__).with_name("tasks.toml")
"""The project's registry plus the CartPole variants of
`gato.experiments.pathnet.cartpole_variants`."""

WAYS = ("pathnet", "finetune", "scratch")


@dataclass
class RLTransferConfig:
    """Task A then task B with IMPALA, PathNet transfer against scratch and fine-tuning.

    Defaults: CartPole-v1 -> CartPole with a pole half as long (same spaces), which IMPALA
    learns from scratch (moving mean return 200) in 150k-400k steps, about 30 s on one core.
    dm-control's cartpole (the first design, balance -> swingup) did not learn even balance
    within 300k steps from scratch: see docs/pathnet.md.
    """

    task_a: str = "gym-cartpole"
    """First task (registry id)."""
    task_b: str = "pathnet-cartpole-short"
    """Second task, with the same observation and action spaces."""
    registry: str | None = None
    """Task registry file (default: gato/experiments/pathnet/tasks.toml, the project's registry +
    variants)."""
    steps_a: int = 500_000
    """Environment steps on task A."""
    steps_b: int = 500_000
    """Most environment steps on task B (each way); also the learning-rate annealing horizon."""
    target_return: float = 200.0
    """B is learnt when the moving mean return reaches this."""
    return_window: int = 20
    """Episodes in the moving mean."""
    seeds: int = 3
    """Seeds (first_seed, first_seed + 1, ...)."""
    first_seed: int = 0
    """The first seed."""
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
    preset: str = "classic"
    """IMPALA preset (`gato.rl.impala.PRESETS`)."""
    learning_rate: float | None = None
    """RMSProp step size (None: the preset's)."""
    num_actors: int = 1
    """Actor processes."""
    output_dir: str = "runs/pathnet/rl"
    """Where results go."""
    ways: list[str] = field(default_factory=lambda: list(WAYS))
    """Ways of learning B."""

    def __post_init__(self) -> None:
        self.ways = list(self.ways)
        if not 0 <= self.reuse <= self.active:
            raise ValueError(f"reuse must lie in [0, active={self.active}]")
        if self.modules < self.active + (self.active - self.reuse):
            raise ValueError("modules leaves too few fresh modules for B's pathway")
        unknown = set(self.ways) - set(WAYS)
        if unknown:
            raise ValueError(f"unknown ways {sorted(unknown)}")
        for name in ("steps_a", "steps_b", "return_window", "seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"RLTransferConfig.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def registry_path(self) -> str:
        return str(self.registry or REGISTRY)


def _impala_run(
    config: RLTransferConfig, task: str, steps: int, seed: int, out: Path, build, stop: bool
):
    from gato.rl.impala import ImpalaConfig, train

    overrides: dict[str, Any] = {}
    if config.learning_rate is not None:
        overrides["learning_rate"] = config.learning_rate
    impala_cfg = ImpalaConfig.from_preset(
        config.preset,
        task=task,
        registry=config.registry_path,
        total_steps=steps,
        seed=seed,
        num_actors=config.num_actors,
        output_dir=str(out),
        stop_at_return=config.target_return if stop else None,
        return_window=config.return_window,
        checkpoint_every=max(steps, 1),
        progress=False,
        **overrides,
    )
    holder: dict[str, Any] = {}

    def network_fn(observation_space, action_space):
        holder["net"] = build(observation_space, action_space)
        return holder["net"]

    result = train(impala_cfg, network_fn)
    return result, holder["net"]


def steps_to_target(returns: list[tuple[int, float]], target: float, window: int) -> int | None:
    """The learner step at which the mean of the last `window` episode returns first reaches
    `target` (None: never)."""
    recent: list[float] = []
    for step, value in returns:
        recent = (recent + [value])[-window:]
        if len(recent) == window and np.mean(recent) >= target:
            return step
    return None


def _episode_summary(result, config: RLTransferConfig, budget: int) -> dict[str, Any]:
    returns = [r for _, r in result.episode_returns]
    reached = steps_to_target(result.episode_returns, config.target_return, config.return_window)
    return {
        "steps_to_target": reached,
        "cost": reached if reached is not None else budget,
        "steps": result.steps,
        "episodes": len(returns),
        "seconds": result.seconds,
        "final_mean_return": float(np.mean(returns[-config.return_window :])) if returns else None,
    }


def run_rl_transfer(
    config: RLTransferConfig, progress: bool = True, command: str | None = None
) -> dict[str, Any]:
    """Every seed: A, then B each way; writes result.json (rewritten after every run) and
    result.md."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    shape = dict(
        layers=config.layers, modules=config.modules, active=config.active, width=config.width
    )
    seeds = range(config.first_seed, config.first_seed + config.seeds)
    bar = tqdm(total=config.seeds * (1 + len(config.ways)), desc="rl", disable=not progress)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        g_a = random_genotype(config.layers, config.active, config.modules, rng)

        def build_a(obs, act, g_a=g_a):
            return PathNetActorCritic(obs, act, genotype=g_a.tolist(), **shape)

        result_a, net_a = _impala_run(
            config, config.task_a, config.steps_a, seed, out / f"s{seed}/A", build_a, False
        )
        bar.update(1)
        record: dict[str, Any] = {
            "seed": seed,
            "genotype_a": g_a.tolist(),
            "A": _episode_summary(result_a, config, config.steps_a),
            "B": {},
        }
        for way in config.ways:
            build = _builder(way, net_a, g_a, config, shape, rng)
            result, net_b = _impala_run(
                config, config.task_b, config.steps_b, seed, out / f"s{seed}/B-{way}", build, True
            )
            entry = _episode_summary(result, config, config.steps_b)
            entry["genotype"] = net_b.genotype.tolist()
            if way == "pathnet":
                entry["frozen_unchanged"] = all(
                    torch.equal(net_b.frozen_state()[k], v)
                    for k, v in _frozen_of(net_a, net_b).items()
                )
            record["B"][way] = entry
            bar.update(1)
            bar.set_postfix(seed=seed, **{w: e["cost"] for w, e in record["B"].items()})
        records.append(record)
        atomic_write_json(out / "records.json", records)
    bar.close()
    summary = summarize_rl(records, config)
    table = rl_table(summary, config)
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
    plot_speedups(
        {f"{config.task_a} -> {config.task_b}": {w: summary[w]["costs"] for w in config.ways}},
        out / "steps.png",
        "environment steps to target on B",
        f"IMPALA, {len(records)} seeds (not reached: the budget)",
    )
    return report


def _frozen_of(net_a: PathNetActorCritic, net_b: PathNetActorCritic) -> dict[str, Tensor]:
    """A's trained values of the modules that are frozen in `net_b`."""
    state = dict(net_a.trunk.named_parameters())
    return {name: state[name].detach() for name, _ in net_b.trunk.frozen_state()}


def summarize_rl(records: list[dict[str, Any]], config: RLTransferConfig) -> dict[str, Any]:
    """Per way: costs (steps to target; the budget when not reached, so a lower bound), their
    spread, and PathNet's speed-ups over the other ways."""
    summary: dict[str, Any] = {}
    for way in config.ways:
        costs = [r["B"][way]["cost"] for r in records]
        summary[way] = {
            "costs": costs,
            "steps": asdict(spread(costs)),
            "not_reached": sum(r["B"][way]["steps_to_target"] is None for r in records),
        }
    if "pathnet" in config.ways:
        for way in config.ways:
            if way != "pathnet":
                summary["pathnet"][f"speedup_over_{way}"] = speedup(
                    summary[way]["costs"], summary["pathnet"]["costs"]
                )
    return summary


def rl_table(summary: dict[str, Any], config: RLTransferConfig) -> str:
    rows = []
    for way in config.ways:
        s = summary[way]
        st = s["steps"]
        row = [
            way,
            f"{st['median']:,.0f} [{st['q25']:,.0f}, {st['q75']:,.0f}]",
            f"{st['mean']:,.0f} ± {st['std']:,.0f}",
            f"{s['not_reached']}/{st['n']}",
        ]
        for other in config.ways:
            if other == "pathnet":
                continue
            sp = s.get(f"speedup_over_{other}")
            row.append(f"{sp['ratio']:.2f} [{sp['low']:.2f}, {sp['high']:.2f}]" if sp else "")
        rows.append(row)
    header = ["way", "B steps to target: median [IQR]", "mean ± std", "not reached"]
    header += [f"PathNet speed-up vs {w} [95% CI]" for w in config.ways if w != "pathnet"]
    return markdown_table(header, rows)


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
    init_seed = int(rng.integers(1 << 30))

    def build_pathnet(obs, act):
        net = PathNetActorCritic(obs, act, genotype=genotype, frozen=used, **shape)
        net.trunk.load_state_dict(a_state)
        net.trunk.reinitialise_unfrozen(torch.Generator().manual_seed(init_seed))
        return net

    return build_pathnet
