"""The simulator checked against the live demo fleet: the same seeded requests replayed
through the tier servers behind their emulated links and through the simulator, at a few
load levels, and compared (:mod:`tierwise.sim.fidelity`).

The rehearsal runs every tier on this machine, so the simulator is told so: the spec's
speed factors are dropped (the profiles were measured here), each remote tier is one
server (one ``tierwise serve`` process, one batch at a time), and what each call spends
outside the model is measured first, through links that add no delay:

- ``per_batch_ms`` and ``per_request_ms``: a server's own time per batch and per row,
  fitted to what its metrics (``tierwise_compute_duration_seconds``,
  ``tierwise_batch_size``) counted while the probe sent one call at a time and then many
  at once;
- ``call_overhead_ms``: the time of a call answered by the tier alone (router, HTTP,
  (de)serialisation, the link's relay with no delay) less the server's own time (a
  device's: the model's profiled time), each probe call a sample the simulator draws
  from.

Each level then runs on fresh links seeded as the simulator is told to draw its round
trips, so both see the same network. A level may cut one tier's link (``reset``: calls
are refused at once) for a span, which the simulator replays as a ``partition`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tierwise.demo import stages
from tierwise.demo.fleet import write_fleet
from tierwise.demo.links import Links, linked_tiers
from tierwise.demo.probe import Probe, probe_doc, probe_tier, replay_open_loop
from tierwise.demo.rehearsal import Rehearsal
from tierwise.demo.settings import DemoSettings
from tierwise.demo.steps import StepCache
from tierwise.demo.tiers import Endpoints, serve_endpoints
from tierwise.http.client import HttpClient
from tierwise.router.client import Client
from tierwise.sim.fidelity import (
    FidelityRow,
    LiveRequests,
    Tolerance,
    compare,
    live_summary,
    seeded_traffic,
    sent_traffic,
    sim_summary,
)

__all__ = ["FidelityResult", "LoadLevel", "default_levels", "run_fidelity"]

#: the heavy level's load on each edge tier, as a share of what it answers at most
NEAR_CAPACITY = 0.7
#: the light levels' traffic, as a share of the heavy level's
LIGHT = 0.15
#: the rehearsal's edge box: each request holds it this long (a Pi-class box)
EDGE_HOLD_MS = 8.0
_SWITCH_INTERVAL_S = 0.0002


@dataclass(frozen=True)
class LoadLevel:
    """One run: each workload's requests per second for ``duration_s``, and optionally
    a tier's link cut from ``partition[1]`` to ``partition[2]`` seconds."""

    name: str
    rates_rps: dict[str, float]
    duration_s: float
    partition: tuple[str, float, float] | None = None


def default_levels(
    doc: Mapping[str, Any], capacity_rps: Mapping[str, float], *, duration_s: float = 30.0
) -> list[LoadLevel]:
    """For the plan ``doc`` whose edge tiers answer ``capacity_rps``: traffic that loads
    each edge tier to ``NEAR_CAPACITY`` of it (shared evenly by the workloads that reach
    it, at the plan's expected reach); light traffic, ``LIGHT`` of that; and light
    traffic with the first cloud tier's link cut for the middle third of the run."""
    reach: dict[tuple[str, str], float] = {}
    clouds: list[str] = []
    for name, workload in doc["workloads"].items():
        stages = [s["tier"] for s in workload["cascade"]]
        expected = (workload.get("expected") or {}).get("reach") or [1.0] * len(stages)
        for tier, fraction in zip(stages, expected, strict=False):
            kind = doc["tiers"][tier]["kind"]
            if kind == "edge" and tier in capacity_rps and fraction > 0:
                reach[(name, tier)] = float(fraction)
            elif kind == "cloud" and tier not in clouds:
                clouds.append(tier)
    heavy: dict[str, float] = {}
    for tier, rate in capacity_rps.items():
        users = [w for w, t in reach if t == tier]
        for w in users:
            wanted = NEAR_CAPACITY * rate / len(users) / reach[(w, tier)]
            heavy[w] = min(heavy.get(w, wanted), wanted)
    light = {w: LIGHT * r for w, r in heavy.items()}
    levels = [
        LoadLevel("light", light, duration_s),
        LoadLevel("near-edge-capacity", heavy, duration_s),
    ]
    if clouds:
        cut = (clouds[0], duration_s / 3.0, 2.0 * duration_s / 3.0)
        levels.append(LoadLevel("cloud-partition", light, duration_s, cut))
    return levels


@dataclass
class FidelityResult:
    """What was measured first, and every level's rows."""

    call_overhead_ms: dict[str, float] = field(default_factory=dict)  # the samples' median
    overhead_samples_ms: dict[str, tuple[float, ...]] = field(default_factory=dict)
    per_request_ms: dict[str, float] = field(default_factory=dict)
    per_batch_ms: dict[str, float] = field(default_factory=dict)
    capacity_rps: dict[str, float] = field(default_factory=dict)
    edge_hold_ms: float = EDGE_HOLD_MS
    rows: list[FidelityRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_overhead_ms": dict(self.call_overhead_ms),
            "per_request_ms": dict(self.per_request_ms),
            "per_batch_ms": dict(self.per_batch_ms),
            "capacity_rps": dict(self.capacity_rps),
            "edge_hold_ms": self.edge_hold_ms,
            "rows": [r.to_dict() for r in self.rows],
            "ok": self.ok,
        }


def _prepare(settings: DemoSettings) -> stages.StoryFiles:
    """The demo's zoo, profiles, calibration and plan (cached when current)."""
    work = settings.work_dir
    work.mkdir(parents=True, exist_ok=True)
    cache = StepCache(work / "steps.json")
    files = stages.StoryFiles.under(work, settings.zoo_dir, write_fleet(work / "fleet.yaml"))
    stages.build_zoo(settings, force=settings.force)
    stages.profile(settings, files, cache, advance=lambda: None)
    stages.calibrate(settings, files, cache)
    stages.plan(settings, files, cache)
    return files


def _write_plan(doc: Mapping[str, Any], path: Path, urls: Mapping[str, str]) -> Path:
    out = yaml.safe_load(yaml.safe_dump(dict(doc)))
    for name, tier in out["tiers"].items():
        if "url" in tier:
            tier["url"] = urls[name]
    path.write_text(yaml.safe_dump(out, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def _servers(
    files: stages.StoryFiles, doc: Mapping[str, Any], edge_hold_ms: float
) -> Iterator[dict[str, str]]:
    """The plan's tier servers, each edge box holding every request ``edge_hold_ms``;
    yields ``{plan tier: its server's URL}``."""
    edges = {t.get("spec_tier", n) for n, t in doc["tiers"].items() if t["kind"] == "edge"}
    configs = {t: {"batching": {"hold_ms_per_row": edge_hold_ms}} for t in edges}
    with serve_endpoints(Endpoints.of_plan(doc), files.zoo, files.work, configs) as live:
        yield {n: live[t["url"]] for n, t in doc["tiers"].items() if "url" in t}


def _links(
    doc: Mapping[str, Any], direct: Mapping[str, str], *, seed: int, delay: bool
) -> contextlib.AbstractContextManager[Links]:
    """A link per remote tier to its server: with the plan's round trips, or none."""
    tiers = {
        name: {**t, "rtt_p50_ms": 0.0, "rtt_p99_ms": 0.0} if not delay else dict(t)
        for name, t in doc["tiers"].items()
    }
    urls = {t["url"]: direct[n] for n, t in doc["tiers"].items() if "url" in t}
    return linked_tiers(tiers, urls, seed=seed)


def run_fidelity(
    settings: DemoSettings,
    levels: list[LoadLevel] | None = None,
    *,
    duration_s: float = 30.0,
    edge_hold_ms: float = EDGE_HOLD_MS,
    tolerance: Tolerance | None = None,
    files: stages.StoryFiles | None = None,
) -> FidelityResult:
    """Measure the tiers, then run each level live and simulated (see the module docs);
    ``levels`` default to :func:`default_levels` at the edge capacity measured; each edge
    box holds every request ``edge_hold_ms`` (the box rehearsed is that slow). ``files``:
    the demo's, when the story made them (otherwise the steps run, cached when current)."""
    files = files or _prepare(settings)
    switch = sys.getswitchinterval()
    # the links relay on a thread of this process: a short switch interval keeps the
    # replay's thread from holding them up (separate machines would not)
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    try:
        return _run(settings, files, levels, duration_s, edge_hold_ms, tolerance)
    finally:
        sys.setswitchinterval(switch)


def _run(
    settings: DemoSettings,
    files: stages.StoryFiles,
    levels: list[LoadLevel] | None,
    duration_s: float,
    edge_hold_ms: float,
    tolerance: Tolerance | None,
) -> FidelityResult:
    inputs = Rehearsal.load(files)
    doc, images, kind_of = inputs.doc, inputs.images, inputs.kind_of
    result = FidelityResult(edge_hold_ms=edge_hold_ms)
    with _servers(files, doc, edge_hold_ms) as direct, _links(doc, direct, seed=settings.seed,
                                                delay=False) as bare:  # fmt: skip
        probe_path = _write_plan(probe_doc(doc, list(kind_of)), files.work / "probe-plan.yaml",
                                 bare.urls)  # fmt: skip

        async def measure() -> dict[str, Probe]:
            out = {}
            async with Client(probe_path) as client:
                for tier, config in doc["tiers"].items():
                    url = direct.get(tier)
                    server = HttpClient(url, timeout_s=10.0) if url else None
                    try:
                        out[tier] = await probe_tier(client, f"probe-{tier}", images[0], server,
                                                 str(config.get("model", "")))  # fmt: skip
                    finally:
                        if server is not None:
                            await server.aclose()
            return out

        measured = asyncio.run(measure())
        compute = inputs.compute_ms()
        for tier, probe in measured.items():
            # a device's time is all the call's; a server's is its own, from its metrics
            server_ms = probe.per_batch_ms + probe.per_row_ms if tier in direct else compute[tier]
            result.per_request_ms[tier] = probe.per_row_ms
            # the simulator adds the model's profiled time to the server's own
            result.per_batch_ms[tier] = max(0.0, probe.per_batch_ms - compute[tier])
            result.overhead_samples_ms[tier] = tuple(
                max(0.0, t - server_ms) for t in probe.times_ms
            )
            result.call_overhead_ms[tier] = statistics.median(result.overhead_samples_ms[tier])
        result.capacity_rps = {t: measured[t].rate_per_s for t, k in kind_of.items() if k == "edge"}
        chosen = levels or default_levels(doc, result.capacity_rps, duration_s=duration_s)
        for level in chosen:
            result.rows += _run_level(settings, files, inputs, direct, level, result,
                                      tolerance)  # fmt: skip
    return result


def _run_level(
    settings: DemoSettings,
    files: stages.StoryFiles,
    inputs: Rehearsal,
    direct: Mapping[str, str],
    level: LoadLevel,
    measured: FidelityResult,
    tolerance: Tolerance | None,
) -> list[FidelityRow]:
    doc, images, kind_of = inputs.doc, inputs.images, inputs.kind_of
    traffic = seeded_traffic(level.rates_rps, level.duration_s, len(images), seed=settings.seed)
    warm = inputs.through_every_stage(list(traffic))
    with _links(doc, direct, seed=settings.seed, delay=True) as links:
        path = _write_plan(doc, files.work / f"fidelity-{level.name}.yaml", links.urls)

        async def live_run() -> LiveRequests:
            async with Client(path) as client:
                # one request down each workload's whole cascade first (what a client asks a
                # tier before its first call is asked then); from the replay on, the links
                # draw the round trips the simulator draws
                for name, row in warm.items():
                    await client.infer({"image": images[row][None]}, workload=name)
                links.reseed()
                return await replay_open_loop(
                    client, level.partition, traffic, images, kind_of, links
                )

        live = asyncio.run(live_run())
        seeds = links.seeds
    # the simulator replays the requests as they were sent (the sender's lag included)
    predicted = _simulate(inputs, level, sent_traffic(live), measured, seeds)
    return compare(level.name, predicted, live_summary(live), tolerance)


def _simulate(
    inputs: Rehearsal,
    level: LoadLevel,
    traffic: Mapping[str, tuple[np.ndarray, np.ndarray]],
    measured: FidelityResult,
    seeds: Mapping[str, int],
) -> dict[str, Any]:
    from tierwise.sim.engine import simulate
    from tierwise.sim.inputs import SimSettings, sim_fleet
    from tierwise.sim.scenario import Scenario, ScenarioEvent

    plan = inputs.plan
    used = {s.tier for w in plan.workloads.values() for s in w.cascade}
    remote = [t for t in used if plan.tiers[t].remote]
    settings = SimSettings(
        # to the last request sent (a sender behind its schedule sends past the end)
        hours=max([level.duration_s, *(float(t[-1]) + 1e-3 for t, _ in traffic.values() if t.size)])
        / 3600.0,
        block_s=min(60.0, level.duration_s),
        servers=dict.fromkeys(remote, 1),
        call_overhead_ms={t: v for t, v in measured.overhead_samples_ms.items() if t in used},
        per_request_ms={t: v for t, v in measured.per_request_ms.items() if t in used},
        per_batch_ms={t: v for t, v in measured.per_batch_ms.items() if t in used},
        rtt_seeds={t: s for t, s in seeds.items() if t in used},
    )
    fleet = sim_fleet(plan, inputs.spec, inputs.catalog, settings, inputs.rows)
    events = []
    if level.partition is not None:
        tier, begin, end = level.partition
        events.append(ScenarioEvent(kind="partition", tiers=(tier,), start_s=begin, end_s=end,
                                    mode="reset"))  # fmt: skip
    run = simulate(fleet, Scenario(name=level.name, events=tuple(events)), traffic=traffic)
    return sim_summary(run, {name: t.kind for name, t in plan.tiers.items()})
