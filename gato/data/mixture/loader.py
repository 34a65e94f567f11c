"""Deterministic, resumable batches of a mixture: `MixtureBatch` and `MixtureLoader`.

Batch `step` is a pure function of (seed, step) (`Mixture.batch`), so the loader needs only the
next step to resume exactly, and batches made in the loop's thread, in a prefetch thread or by
DataLoader worker processes are the same batches.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch

from gato.tokens.batch import GatoBatch


@dataclass
class MixtureBatch:
    """A `GatoBatch` plus, per row, the source it was drawn from (for per-task losses).

    Attributes:
        batch: the padded batch; `batch.as_dict()` goes to the model.
        source_index: (B,) int64 index into `source_names`.
        prompt_kind: (B,) int64 PROMPT_NONE / PROMPT_END / PROMPT_UNIFORM.
        source_names: the mixture's source names.
        step: the step this batch belongs to.
    """

    batch: GatoBatch
    source_index: torch.Tensor
    prompt_kind: torch.Tensor
    source_names: tuple[str, ...] = field(default_factory=tuple)
    step: int = 0

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MixtureBatch:
        return replace(
            self,
            batch=self.batch.to(device, non_blocking=non_blocking),
            source_index=self.source_index.to(device, non_blocking=non_blocking),
            prompt_kind=self.prompt_kind.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> MixtureBatch:
        return replace(
            self,
            batch=self.batch.pin_memory(),
            source_index=self.source_index.pin_memory(),
            prompt_kind=self.prompt_kind.pin_memory(),
        )

    @property
    def num_tokens(self) -> int:
        return self.batch.num_tokens


class BatchMaker(Protocol):
    """What the loader needs of a mixture (`gato.data.mixture.Mixture`)."""

    config: Any
    """Has the `seed` the batches are drawn with."""

    def batch(self, step: int) -> MixtureBatch: ...

    def fingerprint(self) -> str: ...


class _StepDataset(torch.utils.data.Dataset):
    """Map-style view of a mixture: item `step` is batch `step`."""

    def __init__(self, mixture: BatchMaker) -> None:
        self.mixture = mixture

    def __getitem__(self, step: int) -> MixtureBatch:
        return self.mixture.batch(step)


class _CountFrom(torch.utils.data.Sampler):
    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _identity(batch: MixtureBatch) -> MixtureBatch:
    return batch


class _Prefetcher:
    """Makes batches start, start + 1, ... in a background thread, `depth` ahead, in order.

    A thread rather than a process: batches are mostly memory copies that need no pickling to
    reach the training loop, and numpy releases the GIL while copying large arrays.
    """

    def __init__(self, make: Any, start: int, depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make, start), daemon=True)
        self._thread.start()

    def _run(self, make: Any, step: int) -> None:
        while not self._stop.is_set():
            try:
                item = make(step)
            except BaseException as err:  # handed to the consumer, raised there
                item = err
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            step += 1

    def __iter__(self) -> _Prefetcher:
        return self

    def __next__(self) -> MixtureBatch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class MixtureLoader:
    """An endless iterator of `MixtureBatch`es that knows where to resume.

    `state_dict()` records the next step to hand out (batches made ahead but not yet handed out
    do not count), so after `load_state_dict` the loader yields exactly the batches an
    uninterrupted run would have. Batches are made in the calling thread (`prefetch=0`,
    `num_workers=0`), `prefetch` batches ahead in a background thread (the default: enough to
    keep an accelerator fed from a warm cache), or by a torch DataLoader with `num_workers`
    processes (for sources slow enough to need several cores). All three give the same batches.

    Usage in a training loop::

        loader = mixture.loader()
        loader.load_state_dict(checkpoint["data"])  # when resuming
        for batch in loader:
            out = model(**batch.batch.to(device).as_dict())
            ...
            checkpoint["data"] = loader.state_dict()
    """

    def __init__(
        self,
        mixture: BatchMaker,
        start_step: int = 0,
        num_workers: int = 0,
        prefetch: int = 4,
        pin_memory: bool = False,
    ) -> None:
        self.mixture = mixture
        self.step = start_step
        self.num_workers = num_workers
        self.prefetch = prefetch
        self.pin_memory = pin_memory
        self._iterator: Iterator[MixtureBatch] | None = None

    def _make(self, step: int) -> MixtureBatch:
        batch = self.mixture.batch(step)
        return batch.pin_memory() if self.pin_memory else batch

    def _make_iterator(self) -> Iterator[MixtureBatch]:
        if self.num_workers > 0:
            loader = torch.utils.data.DataLoader(
                _StepDataset(self.mixture),
                batch_size=None,
                sampler=_CountFrom(self.step),
                num_workers=self.num_workers,
                collate_fn=_identity,
                pin_memory=self.pin_memory,
                prefetch_factor=max(1, self.prefetch),
                worker_init_fn=_worker_init,
            )
            return iter(loader)
        if self.prefetch > 0:
            return _Prefetcher(self._make, self.step, self.prefetch)
        return map(self._make, itertools.count(self.step))

    def __iter__(self) -> MixtureLoader:
        return self

    def __next__(self) -> MixtureBatch:
        if self._iterator is None:
            self._iterator = self._make_iterator()
        batch = next(self._iterator)
        if batch.step != self.step:  # cannot happen with in-order loading; guards resumption
            raise RuntimeError(f"expected batch {self.step}, got batch {batch.step}")
        self.step += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """{'step': next step, 'seed', 'fingerprint'}: enough to resume exactly."""
        return {
            "step": self.step,
            "seed": self.mixture.config.seed,
            "fingerprint": self.mixture.fingerprint(),
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue from a saved state. With `strict`, a different recipe, config, seed or
        dataset is an error (the batches would not be those of the saved run)."""
        if strict:
            if state.get("seed") != self.mixture.config.seed:
                raise ValueError(
                    f"the saved data state has seed {state.get('seed')}, this mixture "
                    f"{self.mixture.config.seed}"
                )
            if state.get("fingerprint") != self.mixture.fingerprint():
                raise ValueError(
                    "the saved data state belongs to another recipe, config or dataset version; "
                    "pass strict=False to continue anyway with this mixture's batches"
                )
        self.close()
        self.step = int(state["step"])

    def close(self) -> None:
        """Stop the thread or workers; the next batch restarts them from `step`."""
        if isinstance(self._iterator, _Prefetcher):
            self._iterator.close()
        self._iterator = None
