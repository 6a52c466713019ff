"""The demo's steps, each a function of the settings and the files before it.

:func:`profile`, :func:`calibrate` and :func:`plan` return False when the step cache
says their output is current (see :mod:`tierwise.demo.steps`); :func:`live_tiers` starts
the plan's remote tiers and writes the live plan; :func:`replay_all` replays through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from tierwise.demo.fleet import MAIN_WORKLOAD
from tierwise.demo.links import linked_tiers
from tierwise.demo.replay import ReplaySummary, replay
from tierwise.demo.settings import DemoSettings
from tierwise.demo.steps import StepCache, step_key
from tierwise.demo.tiers import (
    BASELINE_TIER,
    Endpoints,
    baseline_workload,
    live_plan,
    serve_endpoints,
)
from tierwise.errors import DemoError
from tierwise.spec import FleetSpec, load_spec

__all__ = [
    "CASCADE_VARIANTS",
    "StoryFiles",
    "build_zoo",
    "calibrate",
    "eval_rows",
    "live_tiers",
    "plan",
    "profile",
    "replay_all",
    "replay_workloads",
    "variant_count",
]

#: The cascade calibration sweeps: one variant per tier kind, cheapest first.
CASCADE_VARIANTS = ("tiny", "small", "large")
# profiles are measured on CPU: the same everywhere, and what the spec's speed factors
# are relative to
_PROVIDERS = ("cpu",)


@dataclass(frozen=True)
class StoryFiles:
    """Where each step reads and writes."""

    work: Path
    zoo: Path
    fleet: Path
    profiles: Path
    calibration: Path
    plan: Path
    live_plan: Path
    report_dir: Path

    @staticmethod
    def under(work: Path, zoo: Path, fleet: Path) -> StoryFiles:
        return StoryFiles(
            work=work,
            zoo=zoo,
            fleet=fleet,
            profiles=work / "profiles.json",
            calibration=work / "calibration.json",
            plan=work / "plan.yaml",
            live_plan=work / "live-plan.yaml",
            report_dir=work / "report",
        )

    @property
    def manifest(self) -> Path:
        """The zoo's manifest: every variant's sha256, so its content stands for the zoo."""
        return self.zoo / "zoo.json"


def build_zoo(settings: DemoSettings, *, force: bool) -> bool:
    """Build the model family unless a current one is there; True when built."""
    from tierwise.zoo import build_zoo as build
    from tierwise.zoo import zoo_is_current

    if not force and zoo_is_current(settings.zoo_dir, settings.seed):
        return False
    build(settings.zoo_dir, seed=settings.seed)
    return True


def variant_count(zoo_dir: Path) -> int:
    from tierwise.zoo import load_zoo

    return len(load_zoo(zoo_dir).variants)


def eval_rows(zoo_dir: Path) -> int:
    from tierwise.zoo import load_eval

    return len(load_eval(zoo_dir)[1])


def _spec(files: StoryFiles) -> FleetSpec:
    return load_spec(files.fleet)


def profile(
    settings: DemoSettings, files: StoryFiles, cache: StepCache, *, advance: Callable[[], None]
) -> bool:
    """Measure every variant of the zoo on this machine into ``profiles.json``."""
    from tierwise.bench.measure import MeasureSettings, profile_zoo
    from tierwise.bench.profiles import save_profiles

    model = _spec(files).workloads[MAIN_WORKLOAD].model
    measure = MeasureSettings(
        batch_sizes=tuple(settings.profile_batch_sizes), runs=settings.profile_runs
    )
    key = step_key(
        {"step": "profile", "model": model, "providers": list(_PROVIDERS),
         "batch_sizes": list(measure.batch_sizes), "runs": measure.runs},
        [files.manifest],
    )  # fmt: skip
    if not settings.force and cache.is_current("profile", key):
        return False
    profiles = profile_zoo(
        files.zoo,
        model=model,
        providers=list(_PROVIDERS),
        settings=measure,
        progress=lambda _variant, _provider: advance(),
    )
    save_profiles(profiles, files.profiles)
    cache.record("profile", key, [files.profiles])
    return True


def calibrate(settings: DemoSettings, files: StoryFiles, cache: StepCache) -> bool:
    """Sweep the cascade's thresholds at the fleet's prices into ``calibration.json``."""
    from tierwise.calibrate.costs import spec_usd_per_inference
    from tierwise.calibrate.sweep import calibrate as sweep
    from tierwise.zoo import load_zoo

    key = step_key(
        {"step": "calibrate", "variants": list(CASCADE_VARIANTS), "workload": MAIN_WORKLOAD,
         "target_accuracy": settings.target_accuracy},
        [files.manifest, files.fleet],
    )  # fmt: skip
    if not settings.force and cache.is_current("calibrate", key):
        return False
    spec = _spec(files)
    zoo = load_zoo(files.zoo)
    kinds = [zoo.variant(v).tier for v in CASCADE_VARIANTS]
    costs = spec_usd_per_inference(spec, kinds, workload=MAIN_WORKLOAD)
    result = sweep(
        files.zoo,
        variants=CASCADE_VARIANTS,
        target_accuracy=settings.target_accuracy,
        usd_per_inference=costs.usd_per_inference,
        cost_source=costs.describe(spec.name or files.fleet.name),
    )
    files.calibration.write_bytes(
        orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    cache.record("calibrate", key, [files.calibration])
    return True


def planned_endpoints(settings: DemoSettings, spec: FleetSpec) -> dict[str, str]:
    """A loopback URL for each edge and cloud tier of the spec, from ``port_base`` up."""
    remote = [t.name for t in spec.tiers.values() if t.kind != "device"]
    return {name: f"http://127.0.0.1:{settings.port_base + i}" for i, name in enumerate(remote)}


def plan(settings: DemoSettings, files: StoryFiles, cache: StepCache) -> bool:
    """Place every workload of the fleet at least cost into ``plan.yaml``."""
    from tierwise.bench.profiles import load_profiles
    from tierwise.plan import Endpoint, load_calibration, plan_fleet, write_plan

    spec = _spec(files)
    urls = planned_endpoints(settings, spec)
    key = step_key(
        {"step": "plan", "endpoints": urls},
        [files.manifest, files.fleet, files.profiles, files.calibration],
    )
    if not settings.force and cache.is_current("plan", key):
        return False
    result = plan_fleet(
        spec,
        [load_profiles(files.profiles)],
        calibrations=[load_calibration(files.calibration)],
    )
    write_plan(
        result,
        spec,
        files.plan,
        spec_path=files.fleet,
        endpoints={name: Endpoint(url) for name, url in urls.items()},
        zoo_dir=files.zoo,
        profiles=[files.profiles],
        calibrations=[files.calibration],
    )
    cache.record("plan", key, [files.plan])
    return True


def _read_plan(files: StoryFiles) -> dict[str, Any]:
    doc = yaml.safe_load(files.plan.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("workloads"), dict):
        raise DemoError(f"{files.plan} is not a plan; run the demo with --force")
    return doc


def replay_workloads(files: StoryFiles) -> list[str]:
    """The plan's interactive workloads, then the main one sent to the cloud alone."""
    workloads = _read_plan(files)["workloads"]
    live = [n for n, w in workloads.items() if w.get("urgency", "interactive") == "interactive"]
    return [*live, baseline_workload(MAIN_WORKLOAD)]


def _baseline_tier(settings: DemoSettings, files: StoryFiles, spec: FleetSpec) -> dict[str, Any]:
    """The cloud tier the main workload could run on alone: the variant the decision
    matrix scores there, priced as the matrix prices it."""
    from tierwise.bench.profiles import load_profiles
    from tierwise.plan import decision_matrix, network_ms
    from tierwise.spec import region_of

    workload = spec.workloads[MAIN_WORKLOAD]
    clouds = [n for n in workload.tiers if spec.tiers[n].kind == "cloud"]
    if not clouds:
        raise DemoError(f"workload {MAIN_WORKLOAD!r} lists no cloud tier to compare with")
    tier = spec.tiers[clouds[0]]
    matrix = decision_matrix(spec, [load_profiles(files.profiles)])
    score = next(t for t in matrix.workload(MAIN_WORKLOAD).tiers if t.tier == tier.name)
    if score.variant is None:
        raise DemoError(f"no variant of {workload.model!r} fits cloud tier {tier.name!r}")
    return {
        "kind": "cloud",
        "spec_tier": tier.name,
        "variant": score.variant,
        "region": region_of(spec, tier),
        "url": planned_endpoints(settings, spec)[tier.name],
        "model": score.variant,
        "binary": True,
        "rtt_p50_ms": network_ms(spec, workload, tier, "p50"),
        "rtt_p99_ms": network_ms(spec, workload, tier, "p99"),
        "cost_usd_per_inference": float(f"{score.usd_per_million / 1e6:.6g}"),
    }


@contextmanager
def live_tiers(settings: DemoSettings, files: StoryFiles) -> Iterator[Path]:
    """Start the plan's remote tiers (and the comparison's cloud model) on loopback, each
    behind an emulated link with the plan's round trips (``settings.network``), and write
    the live plan; yields its path, stops the links and servers on exit."""
    doc = _read_plan(files)
    baseline = _baseline_tier(settings, files, _spec(files))
    with_baseline = {**doc, "tiers": {**doc["tiers"], BASELINE_TIER: baseline}}
    endpoints = Endpoints.of_plan(with_baseline)
    with ExitStack() as stack:
        urls = stack.enter_context(serve_endpoints(endpoints, files.zoo, files.work))
        links = None
        if settings.network:
            links = stack.enter_context(
                linked_tiers(with_baseline["tiers"], urls, seed=settings.seed)
            )
        yield live_plan(doc, urls, files.live_plan, workload=MAIN_WORKLOAD, baseline=baseline,
                        tier_urls=links.urls if links is not None else None)  # fmt: skip


def replay_all(
    settings: DemoSettings, files: StoryFiles, workloads: list[str], *, step: Callable[[], None]
) -> list[ReplaySummary]:
    return replay(files.live_plan, files.zoo, workloads, requests=settings.requests, step=step)
