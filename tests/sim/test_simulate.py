"""The fleet simulator on a user's own fleet (a model the zoo did not make): it is
deterministic, routes exactly as the live policy does, answers where the plan's measured
cascade says, and its scenarios do what they say: a partition degrades interactive work
and holds deferrable work until it drains, repricing spends the budget, heat offloads.
Bad scenario files are refused with the file and field named."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from sim_helpers import PLAN, write_fleet

from tierwise.errors import ConfigError
from tierwise.router.policy import Policy
from tierwise.router.types import RequestMeta
from tierwise.sim.engine import block_starts
from tierwise.sim.inputs import SimSettings
from tierwise.sim.load import Simulated, simulate_files
from tierwise.sim.scenario import Scenario
from tierwise.sim.tiers import tier_states


def _run(folder: Path, events: list[dict[str, Any]] | None = None, *, plan: dict[str, Any] |
         None = None, **settings: Any) -> Simulated:  # fmt: skip
    path = write_fleet(folder, plan)
    scenario = None
    if events is not None:
        scenario = folder / "scenario.yaml"
        scenario.write_text(yaml.safe_dump({"name": "test", "events": events}))
    return simulate_files(path, spec_path=None, profiles=[], scenario_path=scenario,
                          settings=SimSettings(**{"hours": 0.5, **settings}))  # fmt: skip


def _totals(result: Simulated, workload: str) -> dict[str, Any]:
    total: dict[str, Any] = result.summary["workloads"][workload]["total"]
    return total


def _in_window(result: Simulated, workload: str, start_s: float, end_s: float) -> np.ndarray:
    run = result.run
    index = run.workloads.index(workload)
    return np.flatnonzero((run.workload == index) & (run.arrival_s >= start_s)
                          & (run.arrival_s < end_s))  # fmt: skip


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", seed=7).summary
    again = _run(tmp_path / "b", seed=7).summary
    other = _run(tmp_path / "c", seed=8).summary
    first.pop("plan"), again.pop("plan"), other.pop("plan")
    assert orjson.dumps(first) == orjson.dumps(again)
    assert orjson.dumps(first) != orjson.dumps(other)


def test_a_run_that_keeps_no_requests_reports_the_same(tmp_path: Path) -> None:
    path = write_fleet(tmp_path)
    settings = SimSettings(hours=0.25)
    kept = simulate_files(path, spec_path=None, profiles=[], scenario_path=None,
                          settings=settings).summary  # fmt: skip
    lean = simulate_files(path, spec_path=None, profiles=[], scenario_path=None,
                          settings=settings, keep_requests=False)  # fmt: skip
    assert lean.run.arrival_s.size == 0
    assert lean.summary == kept
    # the totals' percentiles (a histogram) agree with the exact ones within 1%
    hour = kept["workloads"]["scan"]["by_hour"][0]
    total = kept["workloads"]["scan"]["total"]
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        assert total[q] == pytest.approx(hour[q], rel=0.01)


def test_answers_land_where_the_measured_cascade_says(tmp_path: Path) -> None:
    result = _run(tmp_path)
    scan = _totals(result, "scan")
    # reach 1 / 0.4 / 0.1: 60% answered on the device, 30% at the edge, 10% in the cloud
    assert scan["share"] == pytest.approx({"device": 0.6, "edge": 0.3, "cloud": 0.1}, abs=0.01)
    assert scan["requests"] == pytest.approx(200 * 1800, rel=0.02)  # Poisson at 200/s
    # every call is paid for: 1e-8 on the device, 1e-6 at the edge for the 40% that
    # reach it, 2e-5 in the cloud for 10%
    assert scan["usd_per_million"] == pytest.approx(1e6 * (1e-8 + 0.4e-6 + 0.1 * 2e-5), rel=0.02)
    assert scan["accuracy"] == pytest.approx(0.95, abs=0.01)
    assert scan["degraded"] == scan["failed"] == 0
    # cloud answers pay the round trips: the p99 sits past the gpu's 90 ms
    assert 20 < scan["p99_ms"] < 200
    faces = _totals(result, "faces")
    assert faces["share"]["cloud"] == 0.0  # personal data stays in the shop
    assert _totals(result, "nightly")["pending"] > 0  # waits for the off-peak hours


def test_routes_are_the_live_policys(tmp_path: Path) -> None:
    events = [{"kind": "partition", "tiers": ["gpu"], "start": "00:05", "end": "00:10"},
              {"kind": "heat", "tiers": ["box"], "start": "00:12", "end": "00:14"},
              {"kind": "price", "tiers": ["gpu"], "factor": 50, "start": "00:15"}]  # fmt: skip
    plan = copy.deepcopy(PLAN)
    plan["workloads"]["scan"]["budget_usd_per_period"] = 0.3
    result = _run(tmp_path, events, plan=plan)
    policy = Policy(result.fleet.plan)
    starts = result.run.blocks_s
    # every minute, every event, and every second in and after the partition
    assert set(block_starts(1800, 60, result.scenario).tolist()) <= set(starts.tolist())
    assert {300.0, 301.0, 599.0} <= set(starts.tolist())
    rng = random.Random(3)
    spent: dict[str, float] = dict.fromkeys(result.fleet.plan.workloads, 0.0)
    costs = result.run.cost_usd
    checked = 0
    for b, t0 in enumerate(starts.tolist()):
        t1 = starts[b + 1] if b + 1 < starts.size else 1800.0
        states = result.run.states[b]  # what the router saw then (its breakers too)
        assert states == {**tier_states(result.fleet, result.scenario, t0), **{
            t: s for t, s in states.items() if s.breaker_open}}  # fmt: skip
        for name in result.run.workloads:
            block = result.run.routes[(b, name)]
            # requests of the block, routed one by one at their own arrival
            rows = list(_in_window(result, name, t0, t1))
            for row in rng.sample(rows, k=min(3, len(rows))):
                at = float(result.run.arrival_s[row])
                live = policy.route(RequestMeta(name, received_s=at), now_s=at, tiers=states,
                                    spent_usd=spent)  # fmt: skip
                assert live.tiers == block.tiers, (name, t0, live, block)
                assert live.degraded == block.degraded
                checked += 1
        for wi, name in enumerate(result.run.workloads):
            rows = (result.run.workload == wi) & (result.run.release_s >= t0)
            rows &= result.run.release_s < t1
            spent[name] += float(costs[rows].sum())
    assert checked > 3 * 3 * 30  # three requests of each workload in each block that has them
    kinds = {result.run.routes[(b, "scan")].tiers for b in range(starts.size)}
    # all, without the cloud (partition, then budget spent), without the box (heat)
    assert kinds >= {("cam", "box", "gpu"), ("cam", "box"), ("cam", "gpu")}


def test_a_partition_degrades_interactive_and_holds_deferrable_work(tmp_path: Path) -> None:
    plan = copy.deepcopy(PLAN)
    del plan["price_schedule"]  # nightly work goes at once while the cloud is there
    events = [{"kind": "partition", "tiers": ["gpu"], "start": "00:10", "end": "00:20"}]
    result = _run(tmp_path, events, plan=plan)
    run = result.run
    cut = _in_window(result, "scan", 600, 1200)
    before = _in_window(result, "scan", 0, 600)
    gpu = run.tiers.index("gpu")
    assert not np.any(run.answered_by[cut] == gpu)  # nothing answered by the cut tier
    assert run.degraded[cut].mean() == pytest.approx(0.1, abs=0.01)  # those that needed it
    assert not run.degraded[before].any()
    assert np.all(run.answered_by[cut] >= 0)  # still answered, lower down
    held = _in_window(result, "nightly", 600, 1200)
    assert run.deferred[held].all()
    assert np.all(run.release_s[held] == pytest.approx(1200.0, abs=61))  # drained at the heal
    assert np.all(run.answered_by[held] == gpu)
    nightly = _totals(result, "nightly")
    assert nightly["outbox_depth_max"] == pytest.approx(held.size, rel=0.05)
    assert nightly["deferred_wait_s_max"] <= 600 + 60
    assert nightly["failed"] == nightly["pending"] == 0


def test_repricing_spends_the_budget_and_degrades(tmp_path: Path) -> None:
    plan = copy.deepcopy(PLAN)
    plan["workloads"]["scan"]["budget_usd_per_period"] = 1.0  # about 0.72 spent in 30 min
    calm = _run(tmp_path / "calm", plan=plan)
    assert _totals(calm, "scan")["degraded"] == 0
    pricey = _run(tmp_path / "pricey", [{"kind": "price", "tiers": ["gpu"], "factor": 3,
                                         "start": "00:10"}], plan=plan)  # fmt: skip
    run = pricey.run
    late = _in_window(pricey, "scan", 1500, 1800)
    assert run.degraded[late].mean() > 0.05  # the cloud is skipped once the money is gone
    assert not np.any(run.answered_by[late] == run.tiers.index("gpu"))
    assert _totals(pricey, "scan")["usd_per_million"] > _totals(calm, "scan")["usd_per_million"]


def test_heat_offloads_the_edge(tmp_path: Path) -> None:
    result = _run(tmp_path, [{"kind": "heat", "tiers": ["box"], "start": "00:05",
                              "end": "00:10"}])  # fmt: skip
    run = result.run
    hot = _in_window(result, "scan", 300, 600)
    box = run.tiers.index("box")
    assert not np.any(run.answered_by[hot] == box)
    assert np.mean(run.answered_by[hot] == run.tiers.index("gpu")) == pytest.approx(0.4, abs=0.02)
    faces = _in_window(result, "faces", 300, 600)
    assert np.all(run.answered_by[faces] == run.tiers.index("cam"))  # the device answers alone
    assert run.degraded[faces].mean() == pytest.approx(0.3, abs=0.02)


def test_a_fleet_grown_tenfold_queues_at_the_edge(tmp_path: Path) -> None:
    light = _totals(_run(tmp_path / "light", hours=0.1), "scan")
    heavy = _totals(_run(tmp_path / "heavy", hours=0.1, traffic_scale=10), "scan")
    assert heavy["requests"] == pytest.approx(10 * light["requests"], rel=0.05)
    assert heavy["p99_ms"] > light["p99_ms"]


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([{"kind": "partition", "tiers": ["nowhere-*"]}], "events[0].tiers"),
        ([{"kind": "burst", "workloads": ["ghost"], "factor": 2}], "events[0].workloads"),
        ([{"kind": "flood", "tiers": ["gpu"]}], "events.0.kind"),
        (
            [{"kind": "partition", "tiers": ["gpu"], "start": "10:00", "end": "09:00"}],
            "must come after start",
        ),
        ([{"kind": "price", "tiers": ["gpu"]}], "needs factor"),
        ([{"kind": "heat", "tiers": ["box"], "start": "noon"}], "events.0.start"),
    ],
)
def test_bad_scenarios_name_the_file_and_field(
    tmp_path: Path, events: list[dict[str, Any]], field: str
) -> None:
    with pytest.raises(ConfigError, match=r"scenario\.yaml") as info:
        _run(tmp_path, events)
    assert field in str(info.value)


def test_an_unknown_spec_tier_in_the_plan_is_named(tmp_path: Path) -> None:
    plan = copy.deepcopy(PLAN)
    plan["tiers"]["box"]["spec_tier"] = "cellar"
    with pytest.raises(Exception, match="cellar"):
        _run(tmp_path, plan=plan)


def test_the_cli_prints_compares_and_writes(tmp_path: Path) -> None:
    path = write_fleet(tmp_path)
    scenario = tmp_path / "cut.yaml"
    scenario.write_text(yaml.safe_dump({"name": "cut", "events": [
        {"kind": "partition", "tiers": ["gpu"], "start": "00:01", "end": "00:03"}]}))  # fmt: skip
    argv = [sys.executable, "-m", "tierwise", "simulate", "--plan", str(path), "--hours",
            "0.1", "--compare", str(scenario), "-o", str(tmp_path / "out"), "--json"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    runs = orjson.loads(done.stdout)["runs"]
    assert [r["scenario"] for r in runs] == [None, "cut"]
    base, cut = (r["workloads"]["scan"]["total"] for r in runs)
    assert base["requests"] == cut["requests"]  # the same seeded traffic
    assert cut["degraded"] > base["degraded"] == 0
    assert orjson.loads((tmp_path / "out" / "simulation.json").read_bytes())["runs"] == runs
    table = subprocess.run(argv[:-5], capture_output=True, text=True, timeout=300, check=False)
    assert table.returncode == 0, table.stderr
    assert "scan" in table.stdout
    assert "per 1M" in table.stdout
    assert "no scenario" in " ".join(table.stdout.split())
    compared = subprocess.run(argv[:-3], capture_output=True, text=True, timeout=300, check=False)
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    side = lines[lines.index("side by side (first | second):") :]
    degraded = next(line for line in side if line.strip().startswith("degraded"))
    assert degraded.split()[1:] == ["0", "|", f"{cut['degraded']:,}"]
    bad = subprocess.run([*argv[:6], "--hours", "0"], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert bad.returncode == 2
    assert "hours" in bad.stderr


def test_empty_scenario_holds_nothing() -> None:
    assert Scenario().times_s() == []


def test_failed_and_preempted_servers_take_capacity_away(tmp_path: Path) -> None:
    settings = {"hours": 0.1, "traffic_scale": 12}  # the two boxes near their capacity
    calm = _run(tmp_path / "calm", **settings)
    half = _run(tmp_path / "half", [{"kind": "node_failure", "tiers": ["box"], "nodes": 1,
                                     "start": "00:01", "end": "00:05"}], **settings)  # fmt: skip
    box = calm.run.tiers.index("box")
    window = _in_window(half, "scan", 60, 300)
    assert not np.any(half.run.answered_by[window] == -1)  # one box still answers
    slow = np.nanpercentile((half.run.done_s - half.run.arrival_s)[window], 99)
    base = np.nanpercentile((calm.run.done_s - calm.run.arrival_s)[window], 99)
    assert slow > base  # the other box queues twice the work
    assert np.mean(calm.run.answered_by[window] == box) > 0.25
    # the cloud's one instance preempted now and then: calls fail over, degraded
    spot = _run(tmp_path / "spot", [{"kind": "spot_preemption", "tiers": ["gpu"],
                                     "rate_per_hour": 30}], hours=0.2)  # fmt: skip
    scan = _totals(spot, "scan")
    assert 0 < scan["fallbacks"] < scan["requests"] * 0.1
    assert scan["degraded"] >= scan["fallbacks"]
    assert scan["share"]["cloud"] < 0.1


def test_budgets_start_afresh_each_period(tmp_path: Path) -> None:
    plan = copy.deepcopy(PLAN)
    # about $0.0048 of cloud a minute: spent after some 4 minutes of each 10-minute period
    plan["workloads"]["scan"]["budget_usd_per_period"] = 0.02
    plan["workloads"]["scan"]["budget_period_s"] = 600
    result = _run(tmp_path, plan=plan)
    run = result.run
    gpu = run.tiers.index("gpu")
    for period in range(3):
        early = _in_window(result, "scan", period * 600, period * 600 + 60)
        late = _in_window(result, "scan", period * 600 + 480, period * 600 + 600)
        assert np.mean(run.answered_by[early] == gpu) == pytest.approx(0.1, abs=0.02)
        assert not np.any(run.answered_by[late] == gpu)
        assert run.degraded[late].mean() > 0.05
