"""Energy per inference while a variant is profiled: measured by the machine's RAPL
counters where they are readable, else estimated from a power model.

Measured: the package energy counted over one batch size's timed calls, divided by the
rows they carried (the whole package: run profiles on an otherwise quiet machine).
Estimated: ``active_watts`` x the mean call time / the batch size, the same rule the tier
server uses for its ``source="estimated"`` series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tierwise.spec.tiers import PowerModel
from tierwise.telemetry.energy import DEFAULT_POWERCAP, EnergySource, RaplReader

__all__ = ["BenchEnergy", "RaplChoice"]

#: where bench looks for RAPL counters: ``auto`` (/sys/class/powercap), ``off``, a folder
RaplChoice = Literal["auto", "off"] | Path


class BenchEnergy:
    """The energy side of one profiling run (one variant at a time)."""

    def __init__(self, power: PowerModel | None = None, rapl: RaplChoice = "auto") -> None:
        self.power = power
        reader = None
        if rapl != "off":
            reader = RaplReader(DEFAULT_POWERCAP if rapl == "auto" else Path(rapl))
        self.rapl = reader if reader is not None and reader.available else None

    @property
    def source(self) -> EnergySource | None:
        """``measured`` with readable counters, ``estimated`` with a power model only."""
        if self.rapl is not None:
            return "measured"
        return "estimated" if self.power is not None else None

    def mark(self) -> float | None:
        """The counters' running total now (None when not measuring)."""
        return self.rapl.energy_j() if self.rapl is not None else None

    def per_inference(
        self, mark: float | None, *, batch: int, runs: int, mean_ms: float
    ) -> float | None:
        """Joules per row of ``runs`` calls of ``batch`` rows that began at ``mark``."""
        if self.rapl is not None:
            now = self.rapl.energy_j()
            if mark is None or now is None:
                return None  # a counter stopped being readable: no figure, not a guess
            return max(now - mark, 0.0) / (runs * batch)
        if self.power is not None:
            return self.power.active_watts * mean_ms / 1000.0 / batch
        return None
