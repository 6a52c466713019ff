"""The one-worker batcher's loop, compiled with Numba when it is installed (the ``sim``
extra), else run as plain Python: the same statements either way, so both give the same
numbers (``tests/sim`` checks it). A busy tier's queue is a batch at a time, which Python
runs at a few microseconds each and the compiled loop at a few nanoseconds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["COMPILED", "one_worker"]


def _one_worker(
    times: np.ndarray,
    costs: np.ndarray,
    factors: np.ndarray,
    max_batch: int,
    max_delay_s: float,
    max_queue: int,
    free_s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    n = times.size
    start = np.full(n, np.nan)
    done = np.full(n, np.nan)
    rows = np.zeros(n, np.int64)
    refused = np.zeros(n, np.bool_)
    queue = np.empty(n, np.int64)  # the waiting requests, oldest at ``head``
    head = 0
    tail = 0
    free = free_s
    k = 0
    batch = 0
    while k < n or tail > head:
        if tail == head:  # idle until the next arrival
            queue[tail] = k
            tail += 1
            k += 1
        if tail - head >= max_batch:
            close = max(free, times[queue[head + max_batch - 1]])
        else:
            close = max(free, times[queue[head]] + max_delay_s)
        while k < n and times[k] <= close:
            if tail - head >= max_queue:
                refused[k] = True
            else:
                queue[tail] = k
                tail += 1
                if tail - head == max_batch:
                    close = max(free, times[k])
            k += 1
        size = min(max_batch, tail - head)
        finish = close + costs[size] * factors[batch]
        batch += 1
        for _ in range(size):
            i = queue[head]
            head += 1
            start[i] = close
            done[i] = finish
            rows[i] = size
        free = finish
    return start, done, rows, refused, free


def _compile() -> tuple[Callable[..., Any], bool]:
    try:
        from numba import njit
    except ImportError:  # the plain Python loop
        return _one_worker, False
    return njit(nogil=True)(_one_worker), True


one_worker, COMPILED = _compile()
