"""IMPALA's actors on Ray, for many machines: the same runners, the same learner.

`RayActors` has the interface of `gato.rl.actors.LocalActors` (`next_unrolls`, `publish`,
`close`, `stats`), so `gato.rl.impala.train` runs unchanged with `backend="ray"`. Each actor is
a Ray actor holding an `EnvRunner`; the learner keeps `buffers_per_actor` unroll calls queued on
each, so an actor starts its next unroll while the learner reads the last. Unrolls come back
through Ray's object store (plain numpy arrays); weights go out as one `ray.put` per update,
which every later call names.

A Ray actor that dies (its node lost, its process killed) fails its pending calls with
`RayActorError`; the pool replaces it with a new generation and drops those calls: their
unrolls never reach the learner, and every unroll taken is stamped (actor, generation, seq).

Install with `pip install .[ray]`; `address` names a running cluster (`ray start --head` on
one machine, `ray start --address ...` on the others), None starts a local instance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gato.rl.actors import ActorError, ActorSettings, PoolStats, actor_seed
from gato.rl.networks import ActorCritic, build_network
from gato.rl.runner import EnvRunner, Unroll


class RayRunner:
    """The body of one Ray actor: an `EnvRunner` and its copy of the policy."""

    def __init__(self, settings: ActorSettings, actor: int, generation: int) -> None:
        torch.set_num_threads(1)
        torch.distributions.Distribution.set_default_validate_args(False)
        self.settings, self.actor, self.generation = settings, actor, generation
        self.network = build_network(
            settings.network_target,
            settings.observation_space,
            settings.action_space,
            settings.network_hyperparameters,
        )
        self.network.eval()
        seed = actor_seed(settings.seed, actor, generation, settings.layout.num_envs)
        torch.manual_seed(seed)  # distinct random streams for every actor (see _actor_main)
        self.runner = EnvRunner(
            settings.task,
            self.network,
            settings.layout,
            seed,
            settings.discount,
            settings.bootstrap_truncated,
        )
        self.version = -1
        self.seq = 0

    def unroll(self, version: int, weights: dict[str, np.ndarray]) -> Unroll:
        """One unroll with the weights of `version` (loaded only when newer than the last)."""
        if version != self.version:
            # The object store's arrays are read-only; load_state_dict copies them anyway.
            state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
            self.network.load_state_dict(state)
            self.version = version
        out = {
            name: np.zeros(shape, dtype=dtype)
            for name, (shape, dtype) in self.settings.layout.fields().items()
        }
        self.runner.fill(out)
        out["policy_version"][0] = version
        out["stamp"][:] = (self.actor, self.generation, self.seq)
        self.seq += 1
        return out


@dataclass
class _RaySlot:
    actor: int
    generation: int
    handle: Any
    pending: dict[Any, None] = field(default_factory=dict)
    unrolls: int = 0


class RayActors:
    """Actors as Ray actors; replaces dead ones. Same interface as `LocalActors`.

    Args:
        settings: what each actor builds (task, layout, network, seeds).
        network: the learner's network (its weights are published to the actors).
        num_actors: Ray actors.
        buffers_per_actor: unroll calls queued on each actor.
        address: Ray cluster address; None starts (or reuses) a local instance.
        num_cpus_per_actor: CPUs Ray reserves for each actor.
        max_restarts: replacements allowed in all before the pool gives up.
        record_ids: keep every taken unroll's (actor, generation, seq) in `stats.taken`.
        timeout: seconds without any unroll after which `next_unrolls` raises.
    """

    def __init__(
        self,
        settings: ActorSettings,
        network: ActorCritic,
        num_actors: int,
        buffers_per_actor: int = 2,
        address: str | None = None,
        num_cpus_per_actor: float = 1.0,
        max_restarts: int = 100,
        record_ids: bool = False,
        timeout: float = 300.0,
    ) -> None:
        if num_actors < 1 or buffers_per_actor < 1:
            raise ValueError(
                f"num_actors and buffers_per_actor must be at least 1, got {num_actors}, "
                f"{buffers_per_actor}"
            )
        try:
            import ray
        except ImportError:
            raise ImportError(
                "backend='ray' needs Ray: pip install '.[ray]' (or pip install ray)"
            ) from None
        self.ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            kwargs: dict[str, Any] = {}
            if address is None:
                # Ray starts its workers at niceness 15; on a busy machine they then starve,
                # and here the actors are what sets the pace (a 2-core machine shared with other
                # jobs took minutes to start them). New local instances only: a cluster's
                # settings are its own.
                kwargs["_system_config"] = {"worker_niceness": 0}
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **kwargs)
        self.settings = settings
        self.buffers_per_actor = buffers_per_actor
        self.max_restarts = max_restarts
        self.timeout = timeout
        self.stats = PoolStats(taken=[] if record_ids else None)
        self._remote = ray.remote(num_cpus=num_cpus_per_actor, max_restarts=0)(RayRunner)
        self.version = 0
        self.weights_ref = None
        self.publish(network)
        self.slots = [self._start(actor, 0) for actor in range(num_actors)]

    @property
    def handles(self) -> list[Any]:
        """The live Ray actor handles, by actor index (tests kill them)."""
        return [s.handle for s in self.slots]

    def _start(self, actor: int, generation: int) -> _RaySlot:
        slot = _RaySlot(actor, generation, self._remote.remote(self.settings, actor, generation))
        for _ in range(self.buffers_per_actor):
            self._submit(slot)
        return slot

    def _submit(self, slot: _RaySlot) -> None:
        slot.pending[slot.handle.unroll.remote(self.version, self.weights_ref)] = None

    def _replace(self, slot: _RaySlot) -> None:
        self.stats.restarts += 1
        try:
            self.ray.kill(slot.handle, no_restart=True)
        except Exception:  # already gone: nothing to stop
            pass
        if self.stats.restarts > self.max_restarts:
            raise ActorError(
                f"Ray actors died {self.stats.restarts} times (max_restarts={self.max_restarts})"
            )
        self.slots[slot.actor] = self._start(slot.actor, slot.generation + 1)

    def publish(self, network: ActorCritic) -> int:
        """Put the network's weights in the object store for the next calls; their version."""
        state = {k: v.detach().cpu().numpy().copy() for k, v in network.state_dict().items()}
        self.weights_ref = self.ray.put(state)
        self.version += 1
        return self.version

    def next_unrolls(self, count: int) -> list[Unroll]:
        """The next `count` unrolls from any actors."""
        ray = self.ray
        out: list[Unroll] = []
        last_progress = time.monotonic()
        while len(out) < count:
            owner = {ref: slot for slot in self.slots for ref in slot.pending}
            ready, _ = ray.wait(list(owner), num_returns=1, timeout=1.0)
            if not ready and time.monotonic() - last_progress > self.timeout:
                raise ActorError(f"no unroll from any Ray actor in {self.timeout:.0f} s")
            for ref in ready:
                slot = owner[ref]
                if self.slots[slot.actor] is not slot:
                    continue
                slot.pending.pop(ref)
                try:
                    unroll = ray.get(ref)
                except ray.exceptions.RayActorError:
                    self._replace(slot)
                    continue
                except ray.exceptions.RayTaskError as err:
                    if slot.unrolls == 0:
                        summary = str(err).strip().splitlines()[-1]
                        raise ActorError(
                            f"Ray actor {slot.actor} failed: {summary}\n{err}"
                        ) from None
                    self._replace(slot)
                    continue
                stamp = tuple(int(x) for x in unroll["stamp"])
                if stamp[:2] != (slot.actor, slot.generation):
                    self.stats.dropped += 1
                    self._submit(slot)
                    continue
                slot.unrolls += 1
                self.stats.unrolls += 1
                self.stats.steps += self.settings.layout.steps
                if self.stats.taken is not None:
                    self.stats.taken.append(stamp)
                self._submit(slot)
                out.append(unroll)
                last_progress = time.monotonic()
        return out

    def close(self) -> None:
        """Kill the actors; shut Ray down if this pool started it."""
        for slot in self.slots:
            try:
                self.ray.kill(slot.handle, no_restart=True)
            except Exception:  # already gone
                pass
        if self._owns_ray:
            self.ray.shutdown()

    def __enter__(self) -> RayActors:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["RayActors", "RayRunner"]
