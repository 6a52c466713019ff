"""The demo's story, step by step: the model family, calibration, the tier servers, the
cascade replay and its comparison with cloud only."""

from tierwise.demo.cascade import (
    USD_PER_INFERENCE,
    DemoError,
    ReplaySummary,
    calibrate_for_demo,
    cascade_plan,
    replay,
    tier_servers,
)

__all__ = [
    "USD_PER_INFERENCE",
    "DemoError",
    "ReplaySummary",
    "calibrate_for_demo",
    "cascade_plan",
    "replay",
    "tier_servers",
]
