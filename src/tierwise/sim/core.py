"""The simulator's discrete-event core: a clock, a heap of ``(time, seq, event)`` and
seeded random streams. No wall clock is read anywhere.

Events scheduled for the same time run in the order they were scheduled (``seq`` breaks
ties), so a run is a pure function of its inputs and its seed. Random numbers come from
:meth:`Simulation.stream`: one independent NumPy generator per name, derived from the
run's seed and the name alone, so adding a stream (a new device class, a new scenario
event) never shifts the numbers another stream draws.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from typing import Any

import numpy as np

from tierwise.errors import ConfigError

__all__ = ["Event", "Simulation"]

Event = Callable[..., Any]


class Simulation:
    """A clock at ``start_s`` and the events due after it (see the module docstring)."""

    def __init__(self, *, seed: int = 0, start_s: float = 0.0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError("seed", "an integer >= 0", seed)
        self.seed = seed
        self.now_s = float(start_s)
        self.events_run = 0
        self._heap: list[tuple[float, int, Event, tuple[Any, ...]]] = []
        self._seq = 0
        self._streams: dict[str, np.random.Generator] = {}

    def stream(self, name: str) -> np.random.Generator:
        """The random stream ``name`` of this run (the same numbers for the same seed)."""
        generator = self._streams.get(name)
        if generator is None:
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
            generator = np.random.default_rng(np.random.SeedSequence([self.seed, key]))
            self._streams[name] = generator
        return generator

    def at(self, time_s: float, event: Event, *args: Any) -> None:
        """Run ``event(*args)`` at ``time_s`` (never before now)."""
        if not time_s >= self.now_s:  # also refuses NaN
            raise ConfigError("time_s", f"a time at or after now ({self.now_s})", time_s)
        heapq.heappush(self._heap, (float(time_s), self._seq, event, args))
        self._seq += 1

    def after(self, delay_s: float, event: Event, *args: Any) -> None:
        """Run ``event(*args)`` ``delay_s`` from now."""
        self.at(self.now_s + delay_s, event, *args)

    @property
    def pending(self) -> int:
        """Events scheduled and not yet run."""
        return len(self._heap)

    def next_time_s(self) -> float | None:
        """When the next event is due (None: none is)."""
        return self._heap[0][0] if self._heap else None

    def run(self, until_s: float | None = None) -> int:
        """Run events in time order up to and including ``until_s`` (all of them when
        None); the clock ends at ``until_s`` (or the last event). Returns how many ran."""
        heap = self._heap
        ran = 0
        while heap and (until_s is None or heap[0][0] <= until_s):
            time_s, _, event, args = heapq.heappop(heap)
            self.now_s = time_s
            event(*args)
            ran += 1
        if until_s is not None and until_s > self.now_s:
            self.now_s = float(until_s)
        self.events_run += ran
        return ran
