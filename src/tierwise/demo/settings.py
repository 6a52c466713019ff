"""How the demo runs: where it works and how much it measures."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from tierwise.errors import ConfigError
from tierwise.settings_errors import SettingsModel

__all__ = ["DemoSettings"]


class DemoSettings(SettingsModel):
    """Where the demo works and how much it measures.

    ``requests`` limits the replay to the first rows of the held-out split (all by
    default); ``profile_runs`` are timed calls per batch size; ``port_base`` numbers the
    plan's remote tiers' endpoints (the live plan points them at free ports); ``network``
    puts each remote tier behind an emulated link with the plan's round trips
    (:mod:`tierwise.demo.links`); ``force`` redoes every step. The demo simulates
    ``simulate_hours`` of the fleet at ``simulate_traffic_scale`` of its traffic under a
    bad day's scenario; ``fidelity`` also checks the simulator against the live fleet
    (:mod:`tierwise.demo.fidelity`), ``fidelity_seconds`` per load level.
    """

    zoo_dir: Path = Path(".tierwise/zoo")
    work_dir: Path = Path(".tierwise/demo")
    seed: int = 0
    requests: int | None = Field(default=None, strict=True)
    profile_runs: int = Field(default=100, strict=True, ge=1)
    profile_batch_sizes: tuple[int, ...] = (1, 8, 32)
    target_accuracy: float = Field(default=0.995, gt=0.0, le=1.0)
    port_base: int = Field(default=18400, ge=1024, le=65000)
    network: bool = True
    force: bool = False
    fidelity: bool = False
    fidelity_seconds: float = Field(default=30.0, ge=2.0, le=3600.0)
    simulate_hours: float = Field(default=24.0, gt=0.0, le=24.0 * 7)
    simulate_traffic_scale: float = Field(default=0.01, gt=0.0, le=10.0)

    @field_validator("requests")
    @classmethod
    def _some_rows(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ConfigError("requests", "a whole number >= 1, or None for every row", value)
        return value
