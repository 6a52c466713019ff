"""What the simulator takes from measurements: escalations drawn from a calibration's
held-out rows, replayed traffic, a rehearsal's servers, overheads and link seeds; and
what a partition does through the router's own breakers (calls fail until the breaker
opens, the tier stays out until a probe after the heal)."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from pydantic import ValidationError
from sim_helpers import PLAN, write_fleet

from tierwise.bench.profiles import load_profiles
from tierwise.errors import ConfigError
from tierwise.link.delay import RttModel
from tierwise.plan.perf import ProfileCatalog
from tierwise.planfile.load import load_plan
from tierwise.router.health import BreakerSettings
from tierwise.sim.engine import simulate
from tierwise.sim.fidelity import (
    LiveRequests,
    Tolerance,
    compare,
    live_summary,
    seeded_traffic,
    sim_summary,
)
from tierwise.sim.inputs import SimSettings, sim_fleet
from tierwise.sim.load import simulate_files
from tierwise.sim.rows import load_calibration_rows
from tierwise.sim.scenario import Scenario, ScenarioEvent
from tierwise.spec import load_spec

ROWS = 400


def _calibration(folder: Path) -> Path:
    """Per-row outcomes as tierwise calibrate writes them, for the plan's variants: the
    camera is sure of every third row, the box of every other row it sees."""
    rng = np.random.default_rng(5)
    cam = np.where(np.arange(ROWS) % 3 == 0, 0.95, 0.5)
    box = np.where(np.arange(ROWS) % 2 == 0, 0.9, 0.4)
    doc = {
        "variants": ["tiny", "mid", "big"],
        "rows": {
            "tiny": {"correct": (rng.random(ROWS) < 0.7).astype(int).tolist(),
                     "confidence": {"max_prob": cam.tolist()}},
            "mid": {"correct": (rng.random(ROWS) < 0.85).astype(int).tolist(),
                    "confidence": {"max_prob": box.tolist()}},
            "big": {"correct": [1] * ROWS, "confidence": {}},
        },
    }  # fmt: skip
    path = folder / "calibration.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def _fleet(folder: Path, plan: dict[str, Any] | None = None, **settings: Any) -> Any:
    path = write_fleet(folder, plan)
    spec = load_spec(folder / "fleet.yaml")
    catalog = ProfileCatalog(spec, [load_profiles(folder / "profiles.json")])
    rows = load_calibration_rows(_calibration(folder))
    return sim_fleet(load_plan(path, check_files=False), spec, catalog,
                     SimSettings(**{"hours": 0.1, **settings}), rows)  # fmt: skip


def test_requests_escalate_and_answer_as_their_held_out_rows_did(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    traffic = seeded_traffic({"scan": 50.0, "faces": 5.0}, 300.0, ROWS, seed=3)
    run = simulate(fleet, Scenario(), traffic=traffic)
    scan = run.workloads.index("scan")
    mine = run.workload == scan
    rows = traffic["scan"][1]
    assert mine.sum() == rows.size  # every replayed request, none drawn
    answered = np.array(run.tiers)[run.answered_by[mine]]
    # the camera keeps the rows it is sure of (every third), the box every other one of
    # the rest, the cloud answers what is left: decided by the row, not by chance
    expected = np.where(rows % 3 == 0, "cam", np.where(rows % 2 == 0, "box", "gpu"))
    assert (answered == expected).all()
    doc = orjson.loads((tmp_path / "calibration.json").read_bytes())["rows"]
    right = {"cam": doc["tiny"]["correct"], "box": doc["mid"]["correct"], "gpu": [1] * ROWS}
    wanted = [bool(right[t][r]) for t, r in zip(answered.tolist(), rows.tolist(), strict=True)]
    assert run.correct[mine].tolist() == wanted
    # the same replay, the same figures: byte for byte
    again = simulate(_fleet(tmp_path / "again"), Scenario(), traffic=traffic)
    assert np.array_equal(again.done_s, run.done_s, equal_nan=True)


def test_a_calibration_without_rows_or_with_ragged_rows_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "old.json"
    bare.write_bytes(orjson.dumps({"variants": ["a", "b"], "rules": {}}))
    with pytest.raises(ConfigError, match=r"old\.json: rows"):
        load_calibration_rows(bare)
    ragged = tmp_path / "ragged.json"
    ragged.write_bytes(orjson.dumps({"rows": {
        "a": {"correct": [1, 0, 1], "confidence": {"margin": [0.5, 0.5]}}}}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"rows\.a\.margin.*3 rows"):
        load_calibration_rows(ragged)
    path = write_fleet(tmp_path / "plan")
    plan = copy.deepcopy(PLAN)
    plan["workloads"]["scan"]["cascade"][0]["rule"] = "entropy"  # not in the file
    write_fleet(tmp_path / "plan", plan)
    with pytest.raises(ConfigError, match="rule 'entropy'"):
        simulate_files(path, spec_path=None, profiles=[], scenario_path=None,
                       settings=SimSettings(hours=0.01),
                       calibration=_calibration(tmp_path))  # fmt: skip


def test_a_rehearsal_gives_servers_overheads_and_link_seeds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="servers"):
        _fleet(tmp_path / "a", servers={"nowhere": 1})
    with pytest.raises(ValidationError, match="call_overhead_ms"):
        SimSettings(call_overhead_ms={"box": -1.0})
    fleet = _fleet(tmp_path / "b", servers={"box": 1}, call_overhead_ms={"box": (2.0, 2.0)},
                   rtt_seeds={"box": 11}, per_request_ms={"box": 3.0},
                   per_batch_ms={"box": 0.5})  # fmt: skip
    box = fleet.tiers["box"]
    assert box.servers == 1
    assert box.steady_s == pytest.approx(0.0035)
    # a batch of b rows pays the serial work b times on top of the model's time
    assert box.service_s[8] - box.service_s[1] == pytest.approx(
        (6.0 - 2.0) / 1000.0 * 1.0 + 7 * 0.003, rel=1e-6
    )
    traffic = {"faces": (np.array([1.0]), np.array([1]))}  # one row the camera passes on
    run = simulate(fleet, Scenario(), traffic=traffic)
    # the round trip is the first one the link seeded with 11 draws
    rtt_s = RttModel(5.0, 20.0).sample_ms(random.Random(11)) / 1000.0
    took = float(run.done_s[0] - run.arrival_s[0])
    service = float(box.service_s[1]) * np.exp(np.array([-4.0, 4.0]) * box.sigma)
    low, high = fleet.tiers["cam"].service_s[1] * 0.0 + rtt_s + 0.002 + service
    assert low < took < high + 0.005


TRAFFIC = seeded_traffic({"scan": 40.0}, 120.0, ROWS, seed=1)


def _partitioned(folder: Path, mode: str, **settings: Any) -> Any:
    fleet = _fleet(folder, breaker=BreakerSettings(open_s=5.0), **settings)
    event = ScenarioEvent(kind="partition", tiers=("gpu",), start_s=30.0, end_s=60.0, mode=mode)
    return simulate(fleet, Scenario(events=(event,)), traffic=TRAFFIC)


def test_a_partition_fails_calls_until_the_breaker_opens_then_a_probe_heals_it(
    tmp_path: Path,
) -> None:
    run = _partitioned(tmp_path, "reset")
    starts = run.blocks_s
    gpu = run.tiers.index("gpu")
    opened = [t for b, t in enumerate(starts.tolist()) if run.states[b]["gpu"].breaker_open]
    # the router only learns of the cut from failed calls: its breaker opens after five
    # of them (one every ~0.22 s at 40/s x 1/3 reaching the cloud), lets a probe through
    # every 5 s (each fails and opens it again), and closes at the first probe after the
    # heal at 60 s
    assert 30.0 < opened[0] < 34.0
    assert sum(1 for t in opened if t < 60.0) >= 0.75 * (60.0 - opened[0])
    assert 55.0 <= opened[-1] < 60.0 + 5.0 + 1.0
    inside = (run.arrival_s >= 30.0) & (run.arrival_s < 60.0)
    assert not np.any(run.answered_by[inside] == gpu)
    needs_cloud = inside & run.degraded
    assert needs_cloud.sum() > 100
    # every request still got an answer (the box's, degraded), and the failed calls,
    # refused as they were sent, are not paid for
    assert np.all(run.answered_by[inside] >= 0)
    failed_calls = run.fallbacks[inside] > 0
    assert 5 <= failed_calls.sum() < needs_cloud.sum()
    # the box's answer that stood is right as the box was on that row
    box = run.tiers.index("box")
    doc = orjson.loads((tmp_path / "calibration.json").read_bytes())["rows"]["mid"]["correct"]
    stood = np.flatnonzero(inside & run.degraded & (run.answered_by == box))
    assert stood.size > 100
    assert run.correct[stood].tolist() == [bool(doc[r]) for r in TRAFFIC["scan"][1][stood]]
    late = run.arrival_s >= 70.0
    assert np.any(run.answered_by[late] == gpu)
    assert not run.degraded[late].any()
    # in a blackhole the calls made before the breaker opens wait out the tier's timeout
    held = _partitioned(tmp_path / "hole", "blackhole")
    slow = (held.done_s - held.arrival_s)[(held.fallbacks > 0)]
    timeout = load_plan(tmp_path / "plan.yaml", check_files=False).tiers["gpu"].timeout_s
    assert slow.size >= 5
    assert np.all(slow >= timeout)
    # while it is open (or its probe is out) the breaker keeps the calls out: no call, no
    # wait, the box's answer stands
    kept_out = (held.arrival_s >= 35.0) & (held.arrival_s < 60.0) & held.degraded
    assert kept_out.sum() > 50
    assert np.all(held.fallbacks[kept_out & (held.done_s - held.arrival_s < timeout)] == 0)


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"ghost": (np.array([1.0]), np.array([0]))}, "traffic.ghost: expected a workload"),
        ({"scan": (np.array([2.0, 1.0]), np.array([0, 1]))}, "sorted arrival times"),
        ({"scan": (np.array([1.0]), np.array([ROWS]))}, r"held-out rows in \[0, 400\)"),
        ({"scan": (np.array([1.0]), np.array([-1]))}, r"held-out rows in \[0, 400\)"),
        ({"scan": (np.array([1.0]), np.array([0, 1]))}, "one of each per request"),
    ],
)
def test_replayed_traffic_that_cannot_be_replayed_is_refused(
    tmp_path: Path, traffic: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate(_fleet(tmp_path), Scenario(), traffic=traffic)


TRAFFIC_9 = seeded_traffic({"scan": 20.0}, 60.0, ROWS, seed=9)


def test_fidelity_rows_compare_each_figure_with_its_tolerance(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    traffic = TRAFFIC_9
    run = simulate(fleet, Scenario(), traffic=traffic)
    kinds = {"cam": "device", "box": "edge", "gpu": "cloud"}
    predicted = sim_summary(run, kinds)
    live = LiveRequests()
    scan = run.workloads.index("scan")
    for i in np.flatnonzero(run.workload == scan).tolist():
        tier = run.tiers[run.answered_by[i]]
        latency = (run.done_s[i] - run.arrival_s[i]) * 1000.0 * 1.05  # 5% slower
        live.add("scan", float(run.arrival_s[i]), int(TRAFFIC_9["scan"][1][0]), kinds[tier],
                 latency, False, float(run.cost_usd[i]))  # fmt: skip
    (row,) = compare("light", predicted, live_summary(live))
    assert row.within == {"p50": True, "p99": True, "share": True, "cost": True}
    assert row.measured.p50_ms == pytest.approx(predicted["scan"].p50_ms * 1.05)
    (strict,) = compare("light", predicted, live_summary(live), Tolerance(latency_rel=0.01))
    assert not strict.within["p50"]
    assert not strict.ok
    assert seeded_traffic({"scan": 20.0}, 60.0, ROWS, seed=9)["scan"][0].tolist() == \
        traffic["scan"][0].tolist()  # fmt: skip
    # a workload only one side saw is a row that fails, not one left out
    rows = compare("light", predicted, {**live_summary(live), "extra": row.measured})
    assert [(r.workload, r.ok) for r in rows] == [("extra", False), ("scan", True)]
    with pytest.raises(ConfigError, match="duration_s"):
        seeded_traffic({"scan": 1.0}, 0.0, ROWS, seed=1)


def test_the_cli_reads_a_calibration(tmp_path: Path) -> None:
    path = write_fleet(tmp_path)
    result = simulate_files(path, spec_path=None, profiles=[], scenario_path=None,
                            settings=SimSettings(hours=0.05),
                            calibration=_calibration(tmp_path))  # fmt: skip
    share = result.summary["workloads"]["scan"]["total"]["share"]
    # a third of the rows stay on the camera, half the rest at the box: 1/3, 1/3, 1/3
    assert share == pytest.approx({"device": 1 / 3, "edge": 1 / 3, "cloud": 1 / 3}, abs=0.02)
    assert yaml.safe_load(path.read_text())["workloads"]["scan"]["expected"]["reach"] == [
        1.0,
        0.4,
        0.1,
    ]  # fmt: skip  (the plan's own rates, which the rows overrule)
