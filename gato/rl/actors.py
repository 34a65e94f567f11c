"""IMPALA's actor processes on one machine: unroll buffers in shared memory, shared weights.

An actor steps `num_envs` environments with a CPU copy of the policy (`gato.rl.runner.EnvRunner`)
and writes unrolls of `unroll_length` steps, time-major, into buffers the learner reads
(`gato.rl.runner.UnrollLayout` lists the fields). On one machine (`LocalActors`) every actor is a
process that owns `buffers_per_actor` shared-memory buffers and talks to the learner over two
pipes of its own:

    learner --free pipe--> actor:   "fill buffer j"
    actor --full pipe--> learner:   "buffer j holds unroll (actor, generation, seq)"

Nothing is shared between actors, no lock is held across processes, so an actor that dies (or is
killed) can corrupt nothing: the learner sees its pipe close or its process exit, drops the
pipes, and starts a replacement (a new generation) on the same buffers. Unrolls the dead actor
had announced but the learner had not read die with the pipe; every unroll the learner takes is
stamped (actor, generation, seq), checked against the buffer's own stamp, written last, so no
unroll is taken twice or half-written.

The learner publishes weights through `SharedWeights`, a seqlock: one writer bumps a version
counter to odd, copies, bumps it to even; an actor copies and retries if the version moved.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from gato.rl.networks import ActorCritic, build_network, network_target
from gato.rl.runner import EnvRunner, Unroll, UnrollLayout
from gato.tasks.registry import TaskSpec

# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


class SharedWeights:
    """The learner's parameters in shared memory, versioned by a seqlock (one writer)."""

    def __init__(self, network: ActorCritic, context: Any) -> None:
        self.tensors = {
            k: v.detach().clone().share_memory_() for k, v in network.state_dict().items()
        }
        # lock=False: the seqlock orders readers and the single writer without a lock, and
        # an actor killed mid-read can leave no lock held.
        self.version = context.Value("q", 0, lock=False)

    def publish(self, network: ActorCritic) -> int:
        """Copy the network's weights in; returns the new (even) version."""
        self.version.value += 1  # odd: being written
        with torch.no_grad():
            for name, value in network.state_dict().items():
                self.tensors[name].copy_(value)
        self.version.value += 1
        return self.version.value // 2

    def pull(self, network: ActorCritic, have: int) -> int:
        """Load the weights into `network` if newer than version `have`; returns the version."""
        while True:
            before = self.version.value
            if before // 2 == have and before % 2 == 0:
                return have
            if before % 2:
                time.sleep(1e-4)
                continue
            with torch.no_grad():
                for name, value in network.state_dict().items():
                    value.copy_(self.tensors[name])
            if self.version.value == before:
                return before // 2


# ---------------------------------------------------------------------------------------------
# Actor processes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActorSettings:
    """What every actor needs besides its buffers and pipes (picklable)."""

    task: TaskSpec
    layout: UnrollLayout
    network_target: str
    network_hyperparameters: dict[str, Any]
    observation_space: Any
    action_space: Any
    discount: float
    bootstrap_truncated: bool
    seed: int


def actor_seed(base: int, actor: int, generation: int, num_envs: int) -> int:
    """Distinct environment seeds for every actor and every replacement of it."""
    return base + 1_000_003 * (generation + 1) + actor * num_envs * 7919


def _actor_main(
    settings: ActorSettings,
    actor: int,
    generation: int,
    buffers: list[dict[str, torch.Tensor]],
    first_buffer: int,
    weights: SharedWeights,
    free: Connection,
    full: Connection,
) -> None:
    """An actor process: fill the buffers the learner hands out, until its pipe closes."""
    try:
        torch.set_num_threads(1)
        torch.distributions.Distribution.set_default_validate_args(False)
        network = build_network(
            settings.network_target,
            settings.observation_space,
            settings.action_space,
            settings.network_hyperparameters,
        )
        network.eval()
        version = weights.pull(network, -1)
        seed = actor_seed(settings.seed, actor, generation, settings.layout.num_envs)
        # Every process starts with torch's same default generator state: unseeded, all actors
        # (and their replacements) would draw the same random numbers (Gaussian actions).
        torch.manual_seed(seed)
        runner = EnvRunner(
            settings.task,
            network,
            settings.layout,
            seed,
            settings.discount,
            settings.bootstrap_truncated,
        )
        arrays = [{k: v.numpy() for k, v in b.items()} for b in buffers]
        seq = 0
        while True:
            try:
                index = free.recv()
            except EOFError:
                return  # the learner is gone or replaced this actor
            version = weights.pull(network, version)
            out = arrays[index - first_buffer]
            runner.fill(out)
            out["policy_version"][0] = version
            out["stamp"][:] = (actor, generation, seq)  # last: marks the unroll complete
            full.send(("unroll", index, seq))
            seq += 1
    except (BrokenPipeError, KeyboardInterrupt):
        return
    except BaseException:
        try:
            full.send(("error", traceback.format_exc()))
        except OSError:
            pass


@dataclass
class _Slot:
    """The learner's view of one actor: its process, pipes and counters."""

    actor: int
    generation: int
    process: Any
    free: Connection  # learner writes buffer indices
    full: Connection  # learner reads announcements
    unrolls: int = 0


@dataclass
class PoolStats:
    """Counters of an actor pool (for logs and tests).

    Attributes:
        unrolls: unrolls handed to the learner.
        steps: environment steps in those unrolls.
        restarts: actors replaced after dying.
        dropped: announced unrolls whose buffer stamp did not match (never expected).
        taken: (actor, generation, seq) of every unroll handed out, when `record_ids`.
    """

    unrolls: int = 0
    steps: int = 0
    restarts: int = 0
    dropped: int = 0
    taken: list[tuple[int, int, int]] | None = None


class ActorError(RuntimeError):
    """An actor failed in a way restarting does not fix (it raised before its first unroll)."""


class LocalActors:
    """Actor processes on this machine, with shared-memory buffers; replaces dead actors.

    Args:
        settings: what each actor builds (task, layout, network, seeds).
        network: the learner's network (its weights are published to the actors).
        num_actors: actor processes.
        buffers_per_actor: buffers each actor owns (2 lets it fill one while one is read).
        start_method: multiprocessing start method ("forkserver", "spawn" or "fork").
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
        start_method: str = "forkserver",
        max_restarts: int = 100,
        record_ids: bool = False,
        timeout: float = 300.0,
    ) -> None:
        if num_actors < 1 or buffers_per_actor < 1:
            raise ValueError(
                f"num_actors and buffers_per_actor must be at least 1, got {num_actors}, "
                f"{buffers_per_actor}"
            )
        import torch.multiprocessing as mp

        self.settings = settings
        self.context = mp.get_context(start_method)
        if start_method == "forkserver":
            # The server imports the actor code (torch, the environments' adapters) once; each
            # actor, and each replacement of a dead one, then starts as a fork in milliseconds
            # instead of importing everything anew as under "spawn".
            self.context.set_forkserver_preload(["gato.rl.actors"])
        self.buffers_per_actor = buffers_per_actor
        self.max_restarts = max_restarts
        self.timeout = timeout
        self.buffers = [
            settings.layout.allocate(shared=True) for _ in range(num_actors * buffers_per_actor)
        ]
        self.weights = SharedWeights(network, self.context)
        self.weights.publish(network)
        self.stats = PoolStats(taken=[] if record_ids else None)
        self.slots: list[_Slot] = [self._start(actor, 0) for actor in range(num_actors)]

    # -- processes ---------------------------------------------------------------------------

    def _start(self, actor: int, generation: int) -> _Slot:
        free_reader, free_writer = self.context.Pipe(duplex=False)
        full_reader, full_writer = self.context.Pipe(duplex=False)
        first = actor * self.buffers_per_actor
        process = self.context.Process(
            target=_actor_main,
            args=(
                self.settings,
                actor,
                generation,
                self.buffers[first : first + self.buffers_per_actor],
                first,
                self.weights,
                free_reader,
                full_writer,
            ),
            daemon=True,
            name=f"impala-actor-{actor}.{generation}",
        )
        process.start()
        # Only the child keeps these ends: its death then closes the pipes for the learner.
        free_reader.close()
        full_writer.close()
        for index in range(first, first + self.buffers_per_actor):
            free_writer.send(index)
        return _Slot(actor, generation, process, free_writer, full_reader)

    def _replace(self, slot: _Slot) -> None:
        self._stop(slot)
        self.stats.restarts += 1
        if self.stats.restarts > self.max_restarts:
            raise ActorError(
                f"actors died {self.stats.restarts} times (max_restarts={self.max_restarts})"
            )
        self.slots[slot.actor] = self._start(slot.actor, slot.generation + 1)

    @staticmethod
    def _stop(slot: _Slot, grace: float = 1.0) -> None:
        # Closed pipes end an actor's loop at its next unroll; an actor holds nothing worth
        # waiting long for, so one still busy after `grace` seconds is killed.
        for conn in (slot.free, slot.full):
            conn.close()
        slot.process.join(timeout=grace)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5)

    @property
    def processes(self) -> list[Any]:
        """The live actor processes, by actor index (tests kill them)."""
        return [s.process for s in self.slots]

    # -- the learner's side ------------------------------------------------------------------

    def publish(self, network: ActorCritic) -> int:
        """Hand the network's current weights to the actors; returns their version."""
        return self.weights.publish(network)

    def next_unrolls(self, count: int) -> list[Unroll]:
        """The next `count` unrolls from any actors (copies: the buffers go straight back)."""
        out: list[Unroll] = []
        last_progress = time.monotonic()
        while len(out) < count:
            by_conn = {s.full: s for s in self.slots}
            by_sentinel = {s.process.sentinel: s for s in self.slots}
            ready = wait([*by_conn, *by_sentinel], timeout=1.0)
            if not ready and time.monotonic() - last_progress > self.timeout:
                raise ActorError(f"no unroll from any actor in {self.timeout:.0f} s")
            # Dead actors' items first: a round that fills up from the live actors' pipes stops
            # before the rest, and could pass over a death on every call to the end of a run.
            slot_of = {**by_conn, **by_sentinel}
            ready.sort(key=lambda item: slot_of[item].process.is_alive())
            for item in ready:
                if len(out) == count:
                    break  # the rest stay in their pipes for the next call
                slot = slot_of[item]
                if self.slots[slot.actor] is not slot:
                    continue  # replaced earlier in this round
                if item is slot.full:
                    unroll = self._receive(slot)
                    if unroll is not None:
                        out.append(unroll)
                        last_progress = time.monotonic()
                elif not slot.full.poll():
                    # Exited with nothing left to read (a pending message is read first).
                    self._replace(slot)
        return out

    def _receive(self, slot: _Slot) -> Unroll | None:
        try:
            message = slot.full.recv()
        except (EOFError, OSError):
            self._replace(slot)
            return None
        if message[0] == "error":
            if slot.unrolls == 0:
                self._stop(slot)
                summary = message[1].strip().splitlines()[-1]
                raise ActorError(f"actor {slot.actor} failed: {summary}\n{message[1]}")
            self._replace(slot)
            return None
        _, index, seq = message
        buffer = self.buffers[index]
        unroll = {k: v.numpy().copy() for k, v in buffer.items()}
        stamp = tuple(int(x) for x in unroll["stamp"])
        if stamp != (slot.actor, slot.generation, seq):
            self.stats.dropped += 1
            unroll = None
        try:
            slot.free.send(index)
        except (BrokenPipeError, OSError):
            self._replace(slot)
        if unroll is None:
            return None
        slot.unrolls += 1
        self.stats.unrolls += 1
        self.stats.steps += self.settings.layout.steps
        if self.stats.taken is not None:
            self.stats.taken.append(stamp)
        return unroll

    def close(self) -> None:
        """Stop every actor (closing its pipes ends its loop) and wait for it."""
        for slot in self.slots:
            for conn in (slot.free, slot.full):
                conn.close()
        for slot in self.slots:
            self._stop(slot)

    def __enter__(self) -> LocalActors:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def actor_settings(
    task: TaskSpec,
    network: ActorCritic,
    layout: UnrollLayout,
    discount: float,
    bootstrap_truncated: bool,
    seed: int,
) -> ActorSettings:
    """`ActorSettings` for actors that rebuild the learner's `network` by its class."""
    return ActorSettings(
        task=task,
        layout=layout,
        network_target=network_target(network),
        network_hyperparameters=network.hyperparameters(),
        observation_space=network.observation_space,
        action_space=network.action_space,
        discount=discount,
        bootstrap_truncated=bootstrap_truncated,
        seed=seed,
    )


__all__ = [
    "ActorError",
    "ActorSettings",
    "LocalActors",
    "PoolStats",
    "SharedWeights",
    "actor_seed",
    "actor_settings",
]
