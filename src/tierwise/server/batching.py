"""Dynamic batching: the per-model queue that feeds the pure merge/split functions of
:mod:`tierwise.server.batch_merge`.

Requests of a batchable model (every input and output has the same symbolic first
dimension) are concatenated along it, run once, and the outputs are split back by each
request's row count. Only requests with the same key (names, dtypes and every other
dimension) are merged: a worker takes the oldest request and the queued requests that
match it, so a detector's 320x320 and 640x480 images run as two batches, never as one
that onnxruntime would refuse. Every request has its own future; an error in the batched
call reaches every waiting future.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pydantic import Field, field_validator, model_validator

from tierwise.errors import ConfigError, DeadlineExceededError, ServerBusyError
from tierwise.server.batch_merge import Tensors, batch_key, batch_rows, merge, split
from tierwise.settings_errors import SettingsModel

__all__ = ["BatchItem", "Batcher", "BatcherSettings", "batch_key", "batch_rows", "merge", "split"]

RunBatch = Callable[[Tensors, Sequence[str]], Awaitable[Tensors]]

#: How far past the oldest request a worker looks for requests that match it.
SCAN_LIMIT = 256


def _find(queue: deque[BatchItem], key: tuple[object, ...], room: int) -> int:
    """Index of the oldest queued request with ``key`` and at most ``room`` rows, looking
    no further than SCAN_LIMIT requests; -1 when there is none."""
    for index, item in enumerate(queue):
        if index >= SCAN_LIMIT:
            break
        if item.key == key and item.rows <= room:
            return index
    return -1


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class BatcherSettings(SettingsModel):
    """How one model's requests are queued and batched (a model's ``batching:``).

    ``max_batch_size`` rows at most are merged into one call (1 turns batching off);
    the first request of a batch waits at most ``max_queue_delay_ms`` for company, less
    when the batch reaches one of ``preferred_batch_sizes``; past ``max_queue_size``
    waiting requests, more are refused (429); ``instances`` batches run at once.
    ``hold_ms_per_row`` rehearses a slower box on this one: each batch is answered no
    sooner than that many ms per row after it started (the wait uses no CPU).
    """

    max_batch_size: int = Field(default=64, ge=1, le=4096)
    max_queue_delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = Field(default=512, ge=1, le=1_000_000)
    instances: int = Field(default=1, ge=1, le=64)
    hold_ms_per_row: float = Field(default=0.0, ge=0, le=60_000)

    @field_validator("preferred_batch_sizes")
    @classmethod
    def _sorted_sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _sizes_fit(self) -> BatcherSettings:
        bad = [s for s in self.preferred_batch_sizes if not 1 <= s <= self.max_batch_size]
        if bad:
            raise ConfigError(
                "preferred_batch_sizes",
                f"sizes between 1 and max_batch_size={self.max_batch_size}",
                bad,
            )
        return self


@dataclass(slots=True)
class BatchItem:
    """One queued request: its inputs, wanted outputs, row count, deadline and future."""

    inputs: Tensors
    outputs: tuple[str, ...]
    rows: int
    future: asyncio.Future[Tensors]
    enqueued_s: float
    deadline_s: float | None = None
    timeout_us: int = 0
    #: requests merge only with equal keys; None: never merged (inputs disagree on rows)
    key: tuple[object, ...] | None = field(default=())


class Batcher:
    """A bounded queue per model and ``instances`` workers that batch from it.

    ``batchable`` is False for models without a batch dimension (see
    :attr:`tierwise.runtime.Signature.batch_problem`): each request then runs alone.
    ``observe`` is called with ``(batch_rows, queue_s_list, compute_s)`` after each batch,
    for metrics; ``inspect`` with the merged inputs and outputs of each batch that
    succeeded (drift monitoring), from a loop callback that runs after the requests of
    the batch were woken with their answers.
    """

    def __init__(
        self,
        model: str,
        run: RunBatch,
        settings: BatcherSettings,
        *,
        batchable: bool,
        observe: Callable[[int, list[float], float], None] | None = None,
        inspect: Callable[[Tensors, Tensors], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.settings = settings
        self.batchable = batchable and settings.max_batch_size > 1
        self._run = run
        self._observe = observe
        self._inspect = inspect
        self._clock = clock
        self._queue: deque[BatchItem] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._workers: list[asyncio.Task[None]] = []
        self._running = 0
        self._closing = False
        self._idle: asyncio.Event | None = None
        self._max_workers = settings.instances
        self._max_queue = settings.max_queue_size
        self._duty_cycle = 1.0
        self._unthrottled: asyncio.Event | None = None

    @property
    def depth(self) -> int:
        """Requests waiting in the queue (not yet running)."""
        return len(self._queue)

    @property
    def closing(self) -> bool:
        """True once the batcher stopped taking requests (drain or stop)."""
        return self._closing

    @property
    def limits(self) -> tuple[int, int]:
        """Batches run at once and queue size allowed now (lower while throttled)."""
        return self._max_workers, self._max_queue

    @property
    def duty_cycle(self) -> float:
        """The share of time each worker may spend computing (1.0 unless throttled)."""
        return self._duty_cycle

    @property
    def in_flight(self) -> int:
        """Requests queued or running."""
        return len(self._queue) + self._running

    def start(self) -> None:
        """Start the workers; must be called inside the running event loop."""
        if self._workers:
            return
        loop = self._loop = asyncio.get_running_loop()
        self._unthrottled = asyncio.Event()
        self._workers = [
            loop.create_task(self._work(i), name=f"batcher-{self.model}-{i}")
            for i in range(self.settings.instances)
        ]

    def limit(
        self,
        *,
        instances: int | None,
        max_queue_size: int | None,
        duty_cycle: float | None = None,
    ) -> None:
        """Run at most ``instances`` batches at once and queue at most ``max_queue_size``
        requests, below the configured values (a hot edge box sheds load); None restores
        the configured value. ``duty_cycle`` below 1 makes each worker rest after a batch
        for as long as it keeps the compute to that share of the time (0.5: rest as long
        as the batch ran), so a hot node draws less power even with one worker."""
        if instances is not None and instances < 1:
            raise ConfigError("instances", ">= 1", instances)
        if max_queue_size is not None and max_queue_size < 1:
            raise ConfigError("max_queue_size", ">= 1", max_queue_size)
        if duty_cycle is not None and not 0.05 <= duty_cycle <= 1.0:
            raise ConfigError("duty_cycle", "between 0.05 and 1", duty_cycle)
        self._duty_cycle = 1.0 if duty_cycle is None else duty_cycle
        self._max_workers = min(instances or self.settings.instances, self.settings.instances)
        self._max_queue = min(
            max_queue_size or self.settings.max_queue_size, self.settings.max_queue_size
        )
        if self._unthrottled is not None:
            self._unthrottled.set()
            self._unthrottled = asyncio.Event()

    def check_capacity(self) -> None:
        """Raise ServerBusyError (429 when full, 503 when stopping) if a request would be
        refused now."""
        if self._loop is None or self._closing:
            raise ServerBusyError(
                model=self.model,
                queue_size=len(self._queue),
                status_code=503,
                reason="this version is not taking requests (starting, retired or draining)",
            )
        if len(self._queue) >= self._max_queue:
            raise ServerBusyError(model=self.model, queue_size=len(self._queue), status_code=429)

    def submit(
        self, inputs: Tensors, outputs: Sequence[str], *, timeout_us: int = 0
    ) -> asyncio.Future[Tensors]:
        """Queue a request; the future resolves to its outputs. Raises ServerBusyError when
        the queue is full, so the caller answers at once instead of waiting."""
        self.check_capacity()
        loop = self._loop
        assert loop is not None  # check_capacity refuses before start(); not input
        now = self._clock()
        wanted = tuple(outputs)
        key: tuple[object, ...] | None = ()
        rows: int | None = 1
        if self.batchable:
            rows = batch_rows(inputs)
            key = None if rows is None else (batch_key(inputs), wanted)
        item = BatchItem(
            inputs,
            wanted,
            1 if rows is None else rows,
            loop.create_future(),
            now,
            now + timeout_us / 1e6 if timeout_us > 0 else None,
            timeout_us,
            key,
        )
        self._queue.append(item)
        self._wake_one()
        return item.future

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _wait_for_work(self, timeout_s: float | None = None) -> None:
        """Sleep until a request is queued (or ``timeout_s`` passes)."""
        loop = self._loop
        assert loop is not None  # start() ran; internal invariant, not input
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        handle = None
        if timeout_s is not None:
            handle = loop.call_later(timeout_s, _release, waiter)
        try:
            await waiter
        finally:
            if handle is not None:
                handle.cancel()

    async def _next_batch(self) -> list[BatchItem]:
        while not self._queue:
            await self._wait_for_work()
        queue = self._queue
        first = queue.popleft()
        batch = [first]
        if not self.batchable or first.key is None:
            return batch
        rows = first.rows
        limit = self.settings.max_batch_size
        preferred = self.settings.preferred_batch_sizes
        flush_at = first.enqueued_s + self.settings.max_queue_delay_ms / 1000.0
        while rows < limit:
            if not queue:
                if rows in preferred:
                    break
                remaining = flush_at - self._clock()
                if remaining <= 0:
                    break
                await self._wait_for_work(remaining)
                continue
            head = queue[0]
            if head.key == first.key and rows + head.rows <= limit:
                item = queue.popleft()  # the common case: the next request matches
            else:
                index = _find(queue, first.key, limit - rows)
                if index < 0:
                    break  # nothing queued matches: run now; the others wait their turn
                item = queue[index]
                del queue[index]
            batch.append(item)
            rows += item.rows
        if queue:
            self._wake_one()  # what is left (other shapes) is another worker's
        return batch

    def _drop_expired(self, batch: list[BatchItem], now: float) -> list[BatchItem]:
        live = []
        for item in batch:
            if item.future.done():  # the client went away
                continue
            if item.deadline_s is not None and now > item.deadline_s:
                item.future.set_exception(
                    DeadlineExceededError(
                        model=self.model,
                        timeout_us=item.timeout_us,
                        waited_ms=(now - item.enqueued_s) * 1000.0,
                    )
                )
                continue
            live.append(item)
        return live

    async def _work(self, index: int = 0) -> None:
        while True:
            while index >= self._max_workers and self._unthrottled is not None:
                await self._unthrottled.wait()
            batch = await self._next_batch()
            if index >= self._max_workers:  # throttled while it waited: hand the work back
                self._queue.extendleft(reversed(batch))
                self._wake_one()
                continue
            started = self._clock()
            batch = self._drop_expired(batch, started)
            if batch:
                await self._run_batch(batch, started)
                if self._duty_cycle < 1.0:
                    busy_s = self._clock() - started
                    await asyncio.sleep(busy_s * (1.0 / self._duty_cycle - 1.0))
            if self._idle is not None and not self.in_flight:
                self._idle.set()

    async def _run_batch(self, batch: list[BatchItem], started: float) -> None:
        self._running += len(batch)
        try:
            inputs, sizes = merge([item.inputs for item in batch])
            outputs = await self._run(inputs, batch[0].outputs)
            if self.settings.hold_ms_per_row > 0:  # a slower box: answer no sooner
                rows = sum(item.rows for item in batch)
                rest_s = started + rows * self.settings.hold_ms_per_row / 1000.0 - self._clock()
                if rest_s > 0:
                    await asyncio.sleep(rest_s)
            merged = self.batchable and batch[0].key is not None
            parts = split(outputs, sizes) if merged else [outputs]
        except Exception as exc:  # every waiting request hears about the failure
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
        else:
            for item, part in zip(batch, parts, strict=True):
                if not item.future.done():
                    item.future.set_result(part)
            if self._inspect is not None:  # queued behind the wake-ups of the requests
                asyncio.get_running_loop().call_soon(self._inspect, inputs, outputs)
        finally:
            self._running -= len(batch)
        if self._observe is not None:
            waits_s = [started - item.enqueued_s for item in batch]
            self._observe(sum(item.rows for item in batch), waits_s, self._clock() - started)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Stop taking requests and wait (up to ``timeout_s``) for queued ones to finish."""
        self._closing = True
        if not self.in_flight:
            return
        self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def stop(self) -> None:
        """Cancel the workers; requests still queued get ServerBusyError (503)."""
        self._closing = True
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(
                    ServerBusyError(model=self.model, queue_size=0, status_code=503)
                )
