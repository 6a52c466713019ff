"""Energy accounting: joules by model, measured where the machine exposes a counter,
otherwise estimated from the node's power model.

Measured: Linux powercap (RAPL) counters, ``/sys/class/powercap/intel-rapl:N/energy_uj``
(microjoules, wrapping at ``max_energy_range_uj``), summed over the top-level zones (the
packages; a ``psys`` zone, which already contains them, only when there is nothing else).
:class:`RaplReader` reads them; a tree that is absent or unreadable (many kernels let
only root read it) makes the reader unavailable, never an error.

:class:`EnergyMeter` is told, after each batch, which model ran and for how long
(:meth:`EnergyMeter.account`: a few additions, and a counter read at most every
``window_s`` of wall time). With a counter, the energy of each window is charged to the
models that ran in it, in proportion to their busy time, and limited to the share of the
window the node was busy (``energy x min(1, busy / window)``); the rest is idle draw,
seen in the power but charged to no model. Without one, the node's
:class:`~tierwise.spec.tiers.PowerModel` charges ``active_watts`` for each second some
batch kept the node busy: a batch covers ``[end - busy, end]``, and only the part no
earlier batch covered counts, so batches that overlap (several instances, several models)
never add up past ``active_watts x wall time``. Each window's charge is split among the
models that ran in it by busy time, and the power is ``idle + (active - idle) x
utilization`` over the last window. With neither, only busy time is counted and
:attr:`EnergyMeter.source` is None.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tierwise.errors import ConfigError
from tierwise.spec.tiers import PowerModel

__all__ = [
    "DEFAULT_POWERCAP",
    "ENERGY_SOURCES",
    "EnergyMeter",
    "EnergySource",
    "ModelEnergy",
    "PowerModel",
    "RaplReader",
    "RaplZone",
]

log = logging.getLogger("tierwise.telemetry")

#: where Linux exposes its power-capping zones
DEFAULT_POWERCAP = Path("/sys/class/powercap")

EnergySource = Literal["measured", "estimated"]
#: the values of the ``source`` label
ENERGY_SOURCES: tuple[EnergySource, ...] = ("measured", "estimated")

_UJ_PER_J = 1_000_000.0
#: a top-level RAPL zone (``intel-rapl:0``); sub-zones (``intel-rapl:0:0``) are parts of it
_TOP_ZONE = re.compile(r"^intel-rapl:\d+$")


@dataclass(frozen=True, slots=True)
class RaplZone:
    """One powercap zone: its folder, its name (``package-0``, ``psys``) and the value at
    which its counter wraps back to 0 (microjoules)."""

    path: Path
    name: str
    max_range_uj: int


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _zones(root: Path) -> list[RaplZone]:
    try:
        folders = sorted(p for p in root.iterdir() if _TOP_ZONE.match(p.name))
    except OSError:
        return []
    found: list[RaplZone] = []
    for folder in folders:
        limit = _read_int(folder / "max_energy_range_uj")
        if limit is None or limit <= 0 or _read_int(folder / "energy_uj") is None:
            continue
        try:
            name = (folder / "name").read_text().strip()
        except OSError:
            name = folder.name
        found.append(RaplZone(folder, name, limit))
    packages = [z for z in found if z.name != "psys"]
    return packages or found


class RaplReader:
    """The machine's RAPL energy counters under ``root`` (default
    :data:`DEFAULT_POWERCAP`), as one running total in joules.

    :attr:`available` is False when no zone there can be read; :meth:`energy_j` then
    returns None. A counter that wraps between two reads is corrected with its
    ``max_energy_range_uj`` (one wrap at most between reads: minutes even at hundreds of
    watts).
    """

    def __init__(self, root: Path = DEFAULT_POWERCAP) -> None:
        self.root = root
        self.zones = _zones(root)
        self._last_uj: list[int | None] = [None] * len(self.zones)
        self._total_uj = 0

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def energy_j(self) -> float | None:
        """Joules counted over every zone since the first read (0.0 at the first read);
        None when a zone cannot be read any more."""
        if not self.zones:
            return None
        values: list[int] = []
        for zone in self.zones:
            value = _read_int(zone.path / "energy_uj")
            if value is None:
                return None
            values.append(value)
        for i, (zone, value) in enumerate(zip(self.zones, values, strict=True)):
            last = self._last_uj[i]
            if last is not None:
                delta = value - last
                self._total_uj += delta if delta >= 0 else delta + zone.max_range_uj
            self._last_uj[i] = value
        return self._total_uj / _UJ_PER_J


class ModelEnergy:
    """One model's running totals: busy seconds and joules by source. Its
    :meth:`account` is what a server calls after each batch of the model."""

    __slots__ = ("_meter", "busy_s", "estimated_j", "measured_j", "model", "window_busy_s")

    def __init__(self, meter: EnergyMeter, model: str) -> None:
        self._meter = meter
        self.model = model
        self.busy_s = 0.0
        self.window_busy_s = 0.0
        self.measured_j = 0.0
        self.estimated_j = 0.0

    def account(self, busy_s: float) -> None:
        """One batch of this model ran for ``busy_s`` seconds."""
        self.busy_s += busy_s
        self._meter._charge(self, busy_s)

    def joules(self, source: EnergySource) -> float:
        return self.measured_j if source == "measured" else self.estimated_j


class EnergyMeter:
    """Busy time and energy of the models of one node (see the module docs).

    ``power`` is the node's power model, ``rapl`` its counters (used first when
    available); ``window_s`` is the least wall time between two counter reads and the
    span the power is computed over; ``clock`` gives monotonic seconds. Meant to be used
    from one thread (a server's event loop).
    """

    def __init__(
        self,
        *,
        power: PowerModel | None = None,
        rapl: RaplReader | None = None,
        window_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window_s > 0:
            raise ConfigError("window_s", "a number of seconds > 0", window_s)
        self.power = power
        self.window_s = window_s
        self._clock = clock
        self._models: dict[str, ModelEnergy] = {}
        now = clock()
        self._window_at = now
        self._window_busy_s = 0.0
        self._power_watts: float | None = None
        # the estimate: busy time covered up to when, and the window not yet charged
        self._covered_until = now
        self._charged_at = now
        self._pending_busy_s = 0.0
        self._pending_covered_s = 0.0
        self._rapl: RaplReader | None = None
        self._last_j = 0.0
        if rapl is not None:
            first = rapl.energy_j()
            if first is not None:
                self._rapl = rapl
                self._last_j = first
        self._active_watts = power.active_watts if power is not None else None

    @property
    def source(self) -> EnergySource | None:
        """``measured`` (RAPL), ``estimated`` (power model) or None (busy time only)."""
        if self._rapl is not None:
            return "measured"
        return "estimated" if self.power is not None else None

    def model(self, model: str) -> ModelEnergy:
        """The totals of ``model`` (created at 0 on first use); hold on to it to account
        batches without the lookup."""
        found = self._models.get(model)
        if found is None:
            found = self._models[model] = ModelEnergy(self, model)
        return found

    @property
    def models(self) -> dict[str, ModelEnergy]:
        """Every model accounted so far, by name."""
        return self._models

    def account(self, model: str, busy_s: float) -> None:
        """One batch of ``model`` ran for ``busy_s`` seconds."""
        self.model(model).account(busy_s)

    def _charge(self, entry: ModelEnergy, busy_s: float) -> None:
        if self._rapl is not None:
            self._window_busy_s += busy_s
            entry.window_busy_s += busy_s
            now = self._clock()
            if now - self._window_at >= self.window_s:
                self._read(now)
        elif self._active_watts is not None:
            now = self._clock()
            start = now - busy_s
            if start < self._covered_until:  # overlaps what earlier batches covered
                start = self._covered_until
            covered = now - start if now > start else 0.0
            if now > self._covered_until:
                self._covered_until = now
            self._window_busy_s += covered
            self._pending_covered_s += covered
            self._pending_busy_s += busy_s
            entry.window_busy_s += busy_s
            if now - self._charged_at >= self.window_s:
                self._estimate(now)

    def settle(self) -> None:
        """Bring the energy totals up to date: charge the estimate's open window, or
        close a measured window at least ``window_s`` old. A scrape calls it before it
        reads the totals."""
        now = self._clock()
        if self._rapl is not None:
            if now - self._window_at >= self.window_s:
                self._read(now)
        elif self._active_watts is not None:
            self._estimate(now)

    def _estimate(self, now: float) -> None:
        """Charge ``active_watts`` x the busy time covered since the last charge, split
        among the models that ran by busy time."""
        busy, covered = self._pending_busy_s, self._pending_covered_s
        if busy > 0 and covered > 0 and self._active_watts is not None:
            per_busy_s = self._active_watts * covered / busy
            for entry in self._models.values():
                if entry.window_busy_s:
                    entry.estimated_j += entry.window_busy_s * per_busy_s
        for entry in self._models.values():
            entry.window_busy_s = 0.0
        self._pending_busy_s = self._pending_covered_s = 0.0
        self._charged_at = now

    def _read(self, now: float) -> None:
        """Close the window: read the counters and charge the window's energy."""
        rapl = self._rapl
        if rapl is None:
            return
        total_j = rapl.energy_j()
        if total_j is None:
            self._lose_rapl()
            return
        elapsed = now - self._window_at
        delta_j = max(total_j - self._last_j, 0.0)
        busy = self._window_busy_s
        if elapsed > 0:
            self._power_watts = delta_j / elapsed
            if busy > 0 and delta_j > 0:
                per_busy_s = delta_j * min(1.0, busy / elapsed) / busy
                for entry in self._models.values():
                    if entry.window_busy_s:
                        entry.measured_j += entry.window_busy_s * per_busy_s
        for entry in self._models.values():
            entry.window_busy_s = 0.0
        self._window_busy_s = 0.0
        self._window_at = now
        self._last_j = total_j

    def _lose_rapl(self) -> None:
        rapl = self._rapl
        self._rapl = None
        for entry in self._models.values():
            entry.window_busy_s = 0.0
        # the estimate takes over from the last window the counters answered for
        self._covered_until = self._charged_at = self._window_at
        self._pending_busy_s = self._pending_covered_s = 0.0
        fallback = "the power model" if self.power is not None else "busy time only"
        where = rapl.root if rapl is not None else "?"
        log.warning("energy: RAPL counters under %s stopped answering; using %s", where, fallback)

    def power_watts(self) -> float | None:
        """The node's draw over the last window (a scrape closes the window when it is
        at least ``window_s`` old): measured energy / time, or the power model at the
        window's utilization; None with no source, or before a measured window closed."""
        now = self._clock()
        if self._rapl is not None:
            if now - self._window_at >= self.window_s:
                self._read(now)
            return self._power_watts
        if self.power is None:
            return None
        elapsed = now - self._window_at
        if elapsed >= self.window_s or self._power_watts is None:
            utilization = self._window_busy_s / elapsed if elapsed > 0 else 0.0
            self._power_watts = self.power.watts_at(utilization)
            self._window_busy_s = 0.0
            self._window_at = now
        return self._power_watts
