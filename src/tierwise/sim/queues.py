"""Queues of the simulated servers, computed for a whole block of arrivals at once.

- :func:`fifo_departures`: one first-come-first-served server, by Lindley's recursion in
  closed form (``D = cumsum(S) + running max of (A - cumsum(S) + S)``), vectorised;
- :func:`spread_departures`: a tier's replicas behind a round-robin balancer, each a FIFO;
- :func:`batching_server`: the tier server's dynamic batcher
  (:class:`~tierwise.server.batching.BatcherSettings`): a free worker takes the oldest
  waiting request and waits up to ``max_delay_s`` after its arrival for company, starting
  as soon as ``max_batch`` requests wait; a batch of ``b`` rows takes ``service_s[b]``;
  a request that finds ``max_queue`` waiting is refused (429). With several ``instances``
  each free worker forms its batch in turn.

Arrival times must be sorted; times are seconds on the simulation's clock.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tierwise.errors import ConfigError
from tierwise.sim.kernel import COMPILED, one_worker

__all__ = ["BatchRun", "batching_server", "fifo_departures", "spread_departures"]


def _sorted_times(arrivals_s: np.ndarray) -> np.ndarray:
    a = np.asarray(arrivals_s, dtype=float)
    if a.ndim != 1:
        raise ConfigError("arrivals_s", "a 1-d array of times", a.shape)
    if a.size > 1 and bool(np.any(np.diff(a) < 0)):
        raise ConfigError("arrivals_s", "arrival times in order", "unsorted")
    return a


def fifo_departures(arrivals_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """When each request leaves one FIFO server (service starts at ``max(arrival,
    previous departure)``)."""
    a = _sorted_times(arrivals_s)
    s = np.asarray(service_s, dtype=float)
    if s.shape != a.shape:
        raise ConfigError("service_s", f"one service time per arrival ({a.size})", s.size)
    if a.size == 0:
        return a.copy()
    done = np.cumsum(s)
    return done + np.maximum.accumulate(a - (done - s))


def spread_departures(arrivals_s: np.ndarray, service_s: np.ndarray, replicas: int) -> np.ndarray:
    """Departures from ``replicas`` FIFO servers taking arrivals in turn (round robin)."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ConfigError("replicas", "an integer >= 1", replicas)
    a = _sorted_times(arrivals_s)
    s = np.asarray(service_s, dtype=float)
    if replicas == 1:
        return fifo_departures(a, s)
    out = np.empty_like(a)
    for r in range(replicas):
        out[r::replicas] = fifo_departures(a[r::replicas], s[r::replicas])
    return out


@dataclass(frozen=True, slots=True)
class BatchRun:
    """Per request: when its batch started and finished (NaN when refused), its batch's
    rows, and whether it was refused; and when each worker is free after the last."""

    start_s: np.ndarray
    done_s: np.ndarray
    batch_rows: np.ndarray
    refused: np.ndarray
    free_s: tuple[float, ...] = ()

    @property
    def batches(self) -> int:
        """How many batches ran."""
        rows = self.batch_rows[~self.refused]
        return int(np.sum(1.0 / rows)) if rows.size else 0


def batching_server(
    arrivals_s: np.ndarray,
    service_s: np.ndarray,
    *,
    max_batch: int,
    max_delay_s: float,
    max_queue: int,
    instances: int = 1,
    jitter: np.ndarray | None = None,
    free_s: Sequence[float] | None = None,
) -> BatchRun:
    """Run a block of arrivals through the dynamic batcher (see the module docstring).
    ``service_s[b]`` is the time of a batch of ``b`` rows (index 0 unused); ``jitter``
    multiplies the time of the i-th batch run (one factor per arrival at most);
    ``free_s`` is when each worker is free (a previous block's :attr:`BatchRun.free_s`;
    all at 0 when None)."""
    a = _sorted_times(arrivals_s)
    table = np.asarray(service_s, dtype=float)
    for name, value, low in (("max_batch", max_batch, 1), ("max_queue", max_queue, 1),
                             ("instances", instances, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(name, f"an integer >= {low}", value)
    if not max_delay_s >= 0:
        raise ConfigError("max_delay_s", "seconds >= 0", max_delay_s)
    if table.ndim != 1 or table.size < max_batch + 1 or bool(np.any(table[1:] <= 0)):
        raise ConfigError(
            "service_s", f"positive times of batches of 1 to {max_batch} rows", table.size
        )
    n = a.size
    if jitter is not None and np.asarray(jitter).size < n:
        raise ConfigError("jitter", f"a factor per arrival ({n})", np.asarray(jitter).size)
    if instances == 1 and COMPILED:
        one = 0.0 if free_s is None else float(free_s[0])
        scale = np.ones(n) if jitter is None else np.asarray(jitter, dtype=float)
        out = one_worker(a, table, scale, max_batch, float(max_delay_s), max_queue, one)
        return BatchRun(out[0], out[1], out[2], out[3], (float(out[4]),))
    start = np.full(n, np.nan)
    done = np.full(n, np.nan)
    rows = np.zeros(n, dtype=np.int64)
    refused = np.zeros(n, dtype=bool)
    times = a.tolist()
    costs = table.tolist()
    factors = None if jitter is None else np.asarray(jitter, dtype=float).tolist()
    if factors is not None and len(factors) < n:
        raise ConfigError("jitter", f"a factor per arrival ({n})", len(factors))
    batch = 0
    free = [0.0] * instances if free_s is None else [float(f) for f in free_s]
    if len(free) != instances:
        raise ConfigError("free_s", f"one time per instance ({instances})", len(free))
    heapq.heapify(free)
    waiting: deque[int] = deque()
    k = 0  # the next arrival not yet admitted or refused
    fast = instances == 1 and max_delay_s == 0.0
    scale = np.ones(n) if jitter is None else np.asarray(jitter, dtype=float)
    skip = backoff = 0  # batches to run one by one before trying the vectorised path
    while k < n or waiting:
        if fast and not waiting and skip <= 0:
            # while requests run one at a time the batcher is a FIFO server: vectorised
            before = k
            k, batch, free[0] = _single_stretch(
                a, scale, costs[1], k, batch, free[0], start, done, rows
            )
            if k >= n:
                break
            # a busy worker batches: try again later, and later still if it stays busy
            backoff = 0 if k - before >= 8 else min(max(1, 2 * backoff), 256)
            skip = backoff
        skip -= 1
        worker_free = heapq.heappop(free)
        if not waiting:  # idle until the next arrival
            waiting.append(k)
            k += 1
        head = times[waiting[0]]
        # the batch starts when max_batch wait (once the worker is free), else when the
        # oldest has waited max_delay_s; arrivals until then join or are refused
        if len(waiting) >= max_batch:
            close = max(worker_free, times[waiting[max_batch - 1]])
        else:
            close = max(worker_free, head + max_delay_s)
        while k < n and times[k] <= close:
            t = times[k]
            if len(waiting) >= max_queue:
                refused[k] = True
            else:
                waiting.append(k)
                if len(waiting) == max_batch:
                    close = max(worker_free, t)
            k += 1
        begin = close
        size = min(max_batch, len(waiting))
        finish = begin + (costs[size] if factors is None else costs[size] * factors[batch])
        batch += 1
        for _ in range(size):
            index = waiting.popleft()
            start[index] = begin
            done[index] = finish
            rows[index] = size
        heapq.heappush(free, finish)
    return BatchRun(start, done, rows, refused, tuple(sorted(free)))


def _single_stretch(
    a: np.ndarray,
    scale: np.ndarray,
    single_s: float,
    k: int,
    batch: int,
    free_s: float,
    start: np.ndarray,
    done: np.ndarray,
    rows: np.ndarray,
) -> tuple[int, int, float]:
    """Serve arrivals from ``k`` while each runs alone: as long as no request is waiting
    when the one before it starts, the batcher takes one at a time and the worker is a
    FIFO server (Lindley's recursion, vectorised a window at a time). Stops at the first
    request whose start finds the next already waiting (a batch of several forms there).
    Returns (next arrival, batches run, when the worker is free). The window starts small
    and doubles while whole windows pass, so a busy worker costs little here."""
    n = a.size
    window = 16
    while k < n:
        length = min(n - k, window)
        window = min(2 * window, 8192)
        arrive = a[k : k + length]
        service = single_s * scale[batch : batch + length]
        total = np.cumsum(service)
        before = total - service
        head = arrive - before
        head[0] = max(float(arrive[0]), free_s)
        finish = total + np.maximum.accumulate(head)
        begin = finish - service
        nxt = a[k + 1 : k + length + 1]
        crowded = nxt <= begin[: nxt.size]  # the next arrived before this one started
        stop = int(np.argmax(crowded)) if crowded.any() else length
        if stop:
            start[k : k + stop] = begin[:stop]
            done[k : k + stop] = finish[:stop]
            rows[k : k + stop] = 1
            free_s = float(finish[stop - 1])
            k += stop
            batch += stop
        if stop < length:
            break
    return k, batch, free_s
