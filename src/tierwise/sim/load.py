"""A simulation from files: a plan, its fleet spec, profiles and a scenario."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierwise.bench.profiles import load_profiles
from tierwise.errors import ConfigError
from tierwise.plan.perf import ProfileCatalog
from tierwise.planfile.load import load_plan
from tierwise.sim.engine import SimRun, simulate
from tierwise.sim.inputs import SimFleet, SimSettings, sim_fleet
from tierwise.sim.results import summarize
from tierwise.sim.rows import load_calibration_rows
from tierwise.sim.scenario import Scenario, load_scenario
from tierwise.spec import FleetSpec, load_spec

__all__ = ["Simulated", "simulate_files"]


@dataclass(frozen=True)
class Simulated:
    fleet: SimFleet
    scenario: Scenario
    run: SimRun
    summary: dict[str, Any]


def _check_instances(scenario: Scenario, spec: FleetSpec, source: str) -> None:
    """ConfigError naming the event whose ``instances`` is more than every site entry it
    names has (an entry with fewer is cut whole, :mod:`tierwise.sim.sites`)."""
    for i, event in enumerate(scenario.events):
        if event.instances is None:
            continue
        counts = {n: site.site_count for n, site in spec.sites.items() if event.names_site(n)}
        if counts and event.instances > max(counts.values()):
            most = max(counts, key=lambda name: counts[name])
            raise ConfigError(
                f"{source}: events[{i}].instances",
                f"at most the {counts[most]} site(s) of {most}", event.instances,
            )  # fmt: skip


def simulate_files(
    plan_path: Path,
    *,
    spec_path: Path | None,
    profiles: Sequence[Path],
    scenario_path: Path | None,
    settings: SimSettings,
    calibration: Path | None = None,
    keep_requests: bool = True,
) -> Simulated:
    """Load, check and run (ConfigError, SpecError or PlanError naming the file and
    field of a mistake). ``spec_path`` defaults to the plan's ``spec:``; ``profiles`` to
    ``profiles.json`` beside the plan; ``calibration``: per-row outcomes
    (:mod:`tierwise.sim.rows`); ``keep_requests``: see
    :func:`~tierwise.sim.engine.simulate`."""
    plan = load_plan(plan_path, check_files=False)
    spec_file = spec_path or plan.spec
    if spec_file is None:
        raise ConfigError("FLEET", "the fleet spec (the plan names none in spec:)")
    spec = load_spec(Path(spec_file))
    paths = list(profiles) or [plan_path.parent / "profiles.json"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError("--profiles", "profiles.json files (tierwise bench profile)", missing)
    catalog = ProfileCatalog(spec, [load_profiles(p) for p in paths])
    scenario = load_scenario(scenario_path) if scenario_path is not None else Scenario()
    known_tiers = [*plan.tiers, *(t.spec_tier for t in plan.tiers.values() if t.spec_tier)]
    source = str(scenario_path or "scenario")
    scenario.check(known_tiers, plan.workloads, source, spec.sites)
    _check_instances(scenario, spec, source)
    rows = load_calibration_rows(calibration) if calibration is not None else None
    fleet = sim_fleet(plan, spec, catalog, settings, rows)
    run = simulate(fleet, scenario, keep_requests=keep_requests)
    summary = summarize(run, fleet)
    summary["scenario"] = scenario.name if scenario_path is not None else None
    summary["plan"] = str(plan_path)
    return Simulated(fleet, scenario, run, summary)
