"""The thermal guard: read the SoC temperature, throttle above a threshold, recover below a
lower one. The decision is a pure function of the reading and the current state, so
tests and the simulator drive it with any temperature trace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierwise.errors import ConfigError

__all__ = ["SYSFS_THERMAL", "ThermalGuard", "ThermalReading", "ThermalSettings", "read_celsius"]

#: where Linux exposes the SoC temperature (millidegrees Celsius) on a Raspberry Pi 5
SYSFS_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


class ThermalSettings(BaseModel):
    """Above ``high_c`` the node lowers local concurrency (``throttled_instances``,
    ``throttled_queue``), computes at most ``throttled_duty_cycle`` of the time (its
    workers rest after each batch) and asks the router to offload; below ``low_c`` it
    recovers (hysteresis keeps it from flapping)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path | None = Field(
        default=None,
        description="file with the temperature in millidegrees (sysfs) or degrees Celsius; "
        "default: /sys/class/thermal/thermal_zone0/temp when present",
    )
    high_c: float = Field(default=80.0, gt=0, le=150)
    low_c: float = Field(default=70.0, gt=0, le=150)
    poll_s: float = Field(default=2.0, gt=0)
    throttled_instances: int = Field(default=1, ge=1)
    throttled_queue: int = Field(default=8, ge=1)
    throttled_duty_cycle: float = Field(
        default=0.5, ge=0.05, le=1.0,
        description="share of the time the models may compute while hot (1: no rests)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _order(self) -> ThermalSettings:
        if self.low_c >= self.high_c:
            raise ValueError(f"low_c ({self.low_c}) must be below high_c ({self.high_c})")
        return self

    def resolved_source(self) -> Path | None:
        if self.source is not None:
            return self.source
        return SYSFS_THERMAL if SYSFS_THERMAL.is_file() else None


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
