"""Cloud pools that follow their load, late: a scale-up takes ``scale_up_s``, a scale-down
waits ``scale_down_s``, and the requests that arrive before the new servers are up meet a
pool too small for them. On the simulator's test fleet (a model the zoo did not make)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from sim_helpers import PLAN, write_fleet

from tierwise.sim.inputs import SimSettings
from tierwise.sim.load import Simulated, simulate_files
from tierwise.sim.scaling import Scaling, scaling_outages
from tierwise.sim.scenario import Scenario, ScenarioEvent
from tierwise.sim.tiers import tier_states


def test_a_pool_follows_its_hourly_load_late() -> None:
    # 10 requests/s per server; the load needs 1, then 4, then 1 server(s)
    scaling = Scaling(floor=1, per_server_rps=10.0, shares={"w": 0.5})
    rates = {"w": (10.0, 70.0, 10.0) + (10.0,) * 21}
    outages, timelines = scaling_outages(
        {"gpu": (scaling, 6)}, rates, Scenario(), 3 * 3600.0, start_hour=0, up_s=120.0,
        down_s=300.0,
    )  # fmt: skip
    assert timelines["gpu"] == [(0.0, 1), (3720.0, 4), (7500.0, 1)]
    # servers 1-3 are down until 2 minutes into hour 1 and from 5 minutes into hour 2;
    # servers 4 and 5 (up to the ceiling of 6) are never up; server 0 never goes down
    spans = sorted(outages["gpu"])
    assert spans == [
        (1, 0.0, 3720.0), (1, 7500.0, 10800.0), (2, 0.0, 3720.0), (2, 7500.0, 10800.0),
        (3, 0.0, 3720.0), (3, 7500.0, 10800.0), (4, 0.0, 10800.0), (5, 0.0, 10800.0),
    ]  # fmt: skip


def test_a_burst_scales_up_late_and_a_pool_needed_again_soon_is_kept() -> None:
    scaling = Scaling(floor=1, per_server_rps=10.0, shares={"w": 1.0, "other": 1.0})
    rates = {"w": (8.0,) * 24, "other": (0.0,) * 24}
    events = (  # two bursts with a gap shorter than the scale-down wait
        ScenarioEvent(kind="burst", workloads=("w",), factor=3.0, start_s=600.0, end_s=900.0),
        ScenarioEvent(kind="burst", workloads=("w",), factor=3.0, start_s=1000.0, end_s=1200.0),
        ScenarioEvent(kind="burst", workloads=("nobody",), factor=9.0, start_s=0.0),
    )
    _, timelines = scaling_outages(
        {"gpu": (scaling, 4)}, rates, Scenario(events=events), 3600.0, start_hour=5,
        up_s=60.0, down_s=300.0,
    )  # fmt: skip
    # 24 requests/s need 3 servers: up a minute after the first burst begins and kept
    # through the short lull, removed five minutes after the second one ends
    assert timelines["gpu"] == [(0.0, 1), (660.0, 3), (1500.0, 1)]


def test_a_server_waiting_to_be_removed_is_kept_when_the_load_returns() -> None:
    scaling = Scaling(floor=1, per_server_rps=10.0, shares={"w": 1.0})
    events = (  # the second burst begins while the first one's servers wait to go
        ScenarioEvent(kind="burst", workloads=("w",), factor=3.0, start_s=600.0, end_s=900.0),
        ScenarioEvent(kind="burst", workloads=("w",), factor=3.0, start_s=1150.0, end_s=1400.0),
    )
    _, timelines = scaling_outages(
        {"gpu": (scaling, 4)}, {"w": (8.0,) * 24}, Scenario(events=events), 3600.0,
        start_hour=0, up_s=120.0, down_s=300.0,
    )  # fmt: skip
    assert timelines["gpu"] == [(0.0, 1), (720.0, 3), (1700.0, 1)]


def test_a_pool_needed_from_the_start_is_up_at_once_and_never_above_its_ceiling() -> None:
    scaling = Scaling(floor=2, per_server_rps=1.0, shares={"w": 1.0})
    _, timelines = scaling_outages(
        {"gpu": (scaling, 5)}, {"w": (100.0,) * 24}, Scenario(), 7200.0, start_hour=0,
        up_s=600.0, down_s=0.0,
    )  # fmt: skip
    assert timelines["gpu"] == [(0.0, 5)]


def test_every_server_out_makes_the_tier_unhealthy(tmp_path: Path) -> None:
    result = _run(tmp_path, scale_up_s=0.0)
    gpu = result.fleet.tiers["gpu"]
    everyone = {"gpu": [(j, 100.0, 200.0) for j in range(gpu.servers)]}
    most = {"gpu": [(j, 100.0, 200.0) for j in range(gpu.servers - 1)]}
    assert not tier_states(result.fleet, result.scenario, 150.0, None, everyone)["gpu"].healthy
    assert tier_states(result.fleet, result.scenario, 150.0, None, most)["gpu"].healthy
    assert tier_states(result.fleet, result.scenario, 250.0, None, everyone)["gpu"].healthy


# --- the delay in a run --------------------------------------------------------------

#: a cloud-only interactive workload: twice the spec's traffic needs 2 of the pool's 4
#: servers; a x3 burst from 00:10 to 00:20 needs all 4
_BURST = [{"kind": "burst", "workloads": ["scan"], "factor": 3, "start": "00:10", "end": "00:20"}]


def _run(folder: Path, **settings: object) -> Simulated:
    plan = copy.deepcopy(PLAN)
    plan["workloads"]["scan"]["cascade"] = [{"tier": "gpu"}]
    plan["workloads"]["scan"]["expected"] = {"reach": [1.0], "accuracy": 0.97}
    path = write_fleet(folder, plan)
    scenario = folder / "burst.yaml"
    scenario.write_text(yaml.safe_dump({"name": "burst", "events": _BURST}))
    return simulate_files(
        path, spec_path=None, profiles=[], scenario_path=scenario,
        settings=SimSettings(hours=0.5, traffic_scale=2.0, **settings),
    )  # fmt: skip


def _failed(result: Simulated, start_s: float, end_s: float) -> float:
    run = result.run
    rows = np.flatnonzero(
        (run.workload == run.workloads.index("scan"))
        & (run.arrival_s >= start_s)
        & (run.arrival_s < end_s)
    )
    return float(np.isnan(run.done_s[rows]).mean())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Simulated]:
    root = tmp_path_factory.mktemp("scaling")
    return {
        "at_once": _run(root / "a", scale_up_s=0.0),
        "late": _run(root / "b", scale_up_s=300.0),
        "off": _run(root / "c", autoscale=False),
    }


def test_requests_before_the_new_servers_are_up_fail_and_after_they_do_not(
    runs: dict[str, Simulated],
) -> None:
    at_once, late, off = runs["at_once"], runs["late"], runs["off"]
    assert late.run.servers_up["gpu"] == [(0.0, 2), (900.0, 4), (1500.0, 2)]
    assert at_once.run.servers_up["gpu"] == [(0.0, 2), (600.0, 4), (1500.0, 2)]
    assert _failed(at_once, 600.0, 1200.0) < 0.001  # up as the burst began: it holds
    # 5 minutes with 2 servers for the load of 4: the queues fill and most calls time out
    assert _failed(late, 600.0, 900.0) > 0.5
    assert _failed(late, 960.0, 1200.0) < 0.01  # then the pool has grown
    assert _failed(late, 0.0, 600.0) == _failed(at_once, 0.0, 600.0) == 0.0
    # without autoscaling the pool is sized for the busiest hour, not for the burst
    assert off.run.servers_up == {}
    assert off.summary["tiers"]["gpu"]["servers"] == 2
    assert _failed(off, 960.0, 1200.0) > 0.5
    tiers = late.summary["tiers"]["gpu"]
    assert tiers["autoscaled"] is True
    assert (tiers["servers_min"], tiers["servers"], tiers["servers_by_hour"]) == (1, 4, [4])


def test_the_cli_takes_the_scaling_settings(tmp_path: Path) -> None:
    path = write_fleet(tmp_path)
    cli = [sys.executable, "-m", "tierwise", "simulate", "--plan", str(path), "--hours", "0.05"]
    bad = subprocess.run([*cli, "--scale-up-s", "-3"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "--scale-up-s: expected >= 0" in bad.stderr
    for flags, scaled in ((["--no-autoscale"], False), (["--scale-up-s", "30"], True)):
        ok = subprocess.run([*cli, "--json", *flags], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert ("autoscaled" in orjson.loads(ok.stdout)["tiers"]["gpu"]) is scaled


def test_a_pool_whose_only_server_is_preempted_is_unhealthy_from_that_moment(
    tmp_path: Path,
) -> None:
    path = write_fleet(tmp_path)
    scenario = tmp_path / "spot.yaml"
    scenario.write_text(yaml.safe_dump({"name": "spot", "events": [
        {"kind": "spot_preemption", "tiers": ["gpu"], "rate_per_hour": 30}]}))  # fmt: skip
    settings = SimSettings(hours=0.5, servers={"gpu": 1}, spot_replace_s=30.0)
    result = simulate_files(path, spec_path=None, profiles=[], scenario_path=scenario,
                            settings=settings)  # fmt: skip
    run = result.run
    down = [float(run.blocks_s[b]) for b, states in run.states.items()
            if not states["gpu"].healthy]  # fmt: skip
    assert down  # about 15 preemptions in half an hour
    # each outage begins a block of its own: not at the next minute of the routing grid
    assert any(t % 60.0 for t in down)
    # while the pool is down, the router keeps scan's hard requests on the box (degraded)
    # instead of sending them to a pool that refuses them
    scan = run.workloads.index("scan")
    gpu = run.tiers.index("gpu")
    starts = np.asarray(run.blocks_s)
    block = np.searchsorted(starts, run.arrival_s, side="right") - 1
    unhealthy = np.isin(starts[block], down) & (run.workload == scan)
    assert unhealthy.any()
    assert not (run.answered_by[unhealthy] == gpu).any()
    assert int(run.fallbacks[unhealthy].sum()) == 0
