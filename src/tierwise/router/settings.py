"""The router's tunables, handed to :class:`~tierwise.router.router.Router` and
:func:`~tierwise.router.build.build_router` as one settings model."""

from __future__ import annotations

from pydantic import Field

from tierwise.router.health import BreakerSettings
from tierwise.settings_errors import SettingsModel

__all__ = ["RouterSettings"]


class RouterSettings(SettingsModel):
    """How the router treats its tiers.

    - ``hedge_after_ms``: an interactive request whose remote tier has not answered in
      this time is also sent to the next remote tier, and the first answer wins (None:
      never hedge).
    - ``breaker``: when a remote tier's circuit breaker opens and how it probes back.
    - ``latency_window_samples``: how many of each tier's latest latencies make its
      observed p99 (what a policy with deadlines reads).
    """

    hedge_after_ms: float | None = Field(default=None, gt=0)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    latency_window_samples: int = Field(default=256, ge=1, le=1_000_000)
