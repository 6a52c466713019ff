"""How the demo runs: where it works and how much it measures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierwise.errors import ConfigError

__all__ = ["DemoSettings"]


@dataclass(frozen=True)
class DemoSettings:
    """Where the demo works and how much it measures.

    ``requests`` limits the replay to the first rows of the held-out split (all by
    default); ``profile_runs`` are timed calls per batch size; ``port_base`` numbers the
    plan's remote tiers' endpoints (the live plan points them at free ports); ``force``
    redoes every step.
    """

    zoo_dir: Path = Path(".tierwise/zoo")
    work_dir: Path = Path(".tierwise/demo")
    seed: int = 0
    requests: int | None = None
    profile_runs: int = 100
    profile_batch_sizes: tuple[int, ...] = (1, 8, 32)
    target_accuracy: float = 0.995
    port_base: int = 18400
    force: bool = False

    def __post_init__(self) -> None:
        if self.requests is not None and (isinstance(self.requests, bool) or self.requests < 1):
            raise ConfigError(
                "requests", "a whole number >= 1, or None for every row", self.requests
            )
        if isinstance(self.profile_runs, bool) or self.profile_runs < 1:
            raise ConfigError("profile_runs", "a whole number >= 1", self.profile_runs)
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ConfigError("target_accuracy", "a fraction in (0, 1]", self.target_accuracy)
        if not 1024 <= self.port_base <= 65000:
            raise ConfigError("port_base", "a port in [1024, 65000]", self.port_base)
