"""The demo's simulated day: the parcel hub's plan run through the simulator under a bad
day's scenario (the cloud cut off for half an hour, a burst, a price rise, a heat wave
on the dock), and, when asked, the simulator checked against the live fleet.

Both land in the demo's work folder (``scenario.yaml``, ``simulation.json``,
``fidelity.json``) and in the report's simulation section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tierwise.demo.settings import DemoSettings
from tierwise.demo.stages import StoryFiles

__all__ = ["SCENARIO_YAML", "check_fidelity", "simulate_day"]

SCENARIO_YAML = """\
# written by tierwise demo (tierwise.demo.simulation): a bad day at the parcel hub
name: bad-day
description: The cloud cut off mid-morning, a lunchtime rush, a price rise, a hot dock.
events:
  - {kind: partition, tiers: [gpu-pool], start: "10:00", end: "10:30"}
  - {kind: burst, workloads: [parcel-codes], factor: 3, start: "12:00", end: "12:15"}
  - {kind: price, tiers: [gpu-pool], factor: 2, start: "14:00"}
  - {kind: heat, tiers: ["dock-edge*"], start: "15:00", end: "16:00"}
"""


def simulate_day(settings: DemoSettings, files: StoryFiles) -> Path:
    """Simulate the plan under the bad day; the path of ``simulation.json``."""
    from tierwise.sim.inputs import SimSettings
    from tierwise.sim.load import simulate_files

    scenario = files.work / "scenario.yaml"
    scenario.write_text(SCENARIO_YAML, encoding="utf-8")
    sim = SimSettings(hours=settings.simulate_hours, seed=settings.seed,
                      traffic_scale=settings.simulate_traffic_scale)  # fmt: skip
    result = simulate_files(files.plan, spec_path=None, profiles=[files.profiles],
                            scenario_path=scenario, settings=sim,
                            calibration=files.calibration, keep_requests=False)  # fmt: skip
    out = files.work / "simulation.json"
    out.write_bytes(orjson.dumps(result.summary, option=orjson.OPT_INDENT_2))
    return out


def check_fidelity(settings: DemoSettings, files: StoryFiles) -> tuple[Path, dict[str, Any]]:
    """Run the fidelity check (:mod:`tierwise.demo.fidelity`); ``fidelity.json``'s path
    and its document."""
    from tierwise.demo.fidelity import run_fidelity

    result = run_fidelity(settings, duration_s=settings.fidelity_seconds, files=files)
    doc = result.to_dict()
    doc["title"] = (
        f"The same seeded requests replayed live (tier servers behind links with the plan's "
        f"round trips; each edge box held {result.edge_hold_ms:g} ms a request) and through "
        f"the simulator, {settings.fidelity_seconds:g} s per level; within: p50 and p99 "
        "10%, shares 2 points, cost 5%."
    )
    out = files.work / "fidelity.json"
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return out, doc
