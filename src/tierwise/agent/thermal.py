"""The thermal guard: read the SoC temperature, throttle above a threshold, recover below a
lower one. The decision is a pure function of the reading and the current state, so
tests and the simulator drive it with any temperature trace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierwise.errors import ConfigError

__all__ = ["ThermalGuard", "ThermalReading", "read_celsius"]


def read_celsius(path: Path) -> float:
    """A temperature file: sysfs millidegrees (``52312``) or plain degrees (``52.3``)."""
    try:
        text = path.read_text().strip()
        value = float(text)
    except (OSError, ValueError) as exc:
        raise ConfigError("thermal.source", "a file holding a temperature", str(path)) from exc
    # sysfs thermal zones report millidegrees; no SoC runs at 1000 degrees
    return value / 1000.0 if abs(value) >= 1000 else value


@dataclass(frozen=True)
class ThermalReading:
    celsius: float | None
    throttled: bool
    changed: bool


class ThermalGuard:
    """Hysteresis between ``low_c`` and ``high_c``: throttled from the first reading at or
    above ``high_c`` until the first reading at or below ``low_c``."""

    def __init__(self, *, high_c: float, low_c: float) -> None:
        if low_c >= high_c:
            raise ConfigError("thermal.low_c", f"below high_c ({high_c})", low_c)
        self.high_c = high_c
        self.low_c = low_c
        self.throttled = False
        self.last_celsius: float | None = None
        self.transitions = 0

    def observe(self, celsius: float | None) -> ThermalReading:
        """Feed one reading (None: no sensor or unreadable, which changes nothing)."""
        if celsius is None:
            return ThermalReading(None, self.throttled, False)
        self.last_celsius = celsius
        before = self.throttled
        if not self.throttled and celsius >= self.high_c:
            self.throttled = True
        elif self.throttled and celsius <= self.low_c:
            self.throttled = False
        changed = before != self.throttled
        self.transitions += int(changed)
        return ThermalReading(celsius, self.throttled, changed)
