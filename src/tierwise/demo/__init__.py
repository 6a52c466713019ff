"""The demo's story: the model family, profiles, calibration, the plan, the edge and cloud
tier servers on loopback, the held-out split replayed through :class:`tierwise.Client`,
and the report (see :mod:`tierwise.demo.story`)."""

from tierwise.demo.fleet import FLEET_YAML, MAIN_WORKLOAD, write_fleet
from tierwise.demo.replay import ReplaySummary, replay
from tierwise.demo.settings import DemoSettings
from tierwise.demo.steps import StepCache, step_key
from tierwise.demo.story import NullProgress, StepRecord, StoryProgress, StoryResult, run

__all__ = [
    "FLEET_YAML",
    "MAIN_WORKLOAD",
    "DemoSettings",
    "NullProgress",
    "ReplaySummary",
    "StepCache",
    "StepRecord",
    "StoryProgress",
    "StoryResult",
    "replay",
    "run",
    "step_key",
    "write_fleet",
]
