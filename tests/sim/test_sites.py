"""Partitions of some sites only: one of the two shops loses its uplink while the other,
and the cloud, carry on. Only the cut shop's router sees its calls fail and its breaker
open; its own edge box stays reachable; the other shop's requests still reach the cloud.
On the simulator's test fleet (a model the zoo did not make)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from sim_helpers import FLEET, write_fleet

from tierwise.errors import ConfigError
from tierwise.sim.inputs import SimSettings
from tierwise.sim.load import Simulated, simulate_files
from tierwise.sim.sites import OTHERS

WINDOW = (330.0, 900.0)  # from 30 s into the cut (the breaker has opened) to its end


def _run(folder: Path, events: list[dict[str, Any]], hours: float = 0.4) -> Simulated:
    path = write_fleet(folder)
    scenario = folder / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({"name": "cut", "events": events}))
    return simulate_files(path, spec_path=None, profiles=[], scenario_path=scenario,
                          settings=SimSettings(hours=hours))  # fmt: skip


def _window(result: Simulated, workload: str, group: int | None = None) -> np.ndarray:
    run = result.run
    mask = (run.workload == run.workloads.index(workload)) & (run.arrival_s >= WINDOW[0])
    mask &= run.arrival_s < WINDOW[1]
    if group is not None:
        mask &= run.group == group
    return np.flatnonzero(mask)


def _answered_by(result: Simulated, rows: np.ndarray, tier: str) -> int:
    return int((result.run.answered_by[rows] == result.run.tiers.index(tier)).sum())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Simulated]:
    root = tmp_path_factory.mktemp("sites")
    cut = {"kind": "partition", "start": "00:05", "end": "00:15"}
    return {
        "one_shop": _run(root / "a", [{**cut, "sites": ["sh*"], "instances": 1}]),
        "every_shop": _run(root / "b", [{**cut, "sites": ["shop"]}]),
        "cloud": _run(root / "c", [{**cut, "tiers": ["gpu"]}]),
    }


def test_a_cut_shop_degrades_its_own_requests_while_the_other_reaches_the_cloud(
    runs: dict[str, Simulated],
) -> None:
    result = runs["one_shop"]
    kept, cut = _window(result, "scan", 0), _window(result, "scan", 1)
    assert kept.size == pytest.approx(cut.size, rel=0.05)  # one of the two shops: half
    # the other shop's router never saw a failure: the cloud answers its hard requests
    assert _answered_by(result, kept, "gpu") == pytest.approx(0.1 * kept.size, rel=0.1)
    assert int(result.run.degraded[kept].sum()) == 0
    assert int(result.run.fallbacks[kept].sum()) == 0
    # the cut shop's breaker is open: no call to the cloud, the box's answer stands
    assert _answered_by(result, cut, "gpu") == 0
    assert int(result.run.degraded[cut].sum()) == pytest.approx(0.1 * cut.size, rel=0.15)
    assert _answered_by(result, cut, "box") == pytest.approx(0.4 * cut.size, rel=0.1)
    assert not np.isnan(result.run.done_s[cut]).any()
    # the shop's personal data never leaves it: faces is untouched by the cut
    assert int(result.run.degraded[_window(result, "faces")].sum()) == 0
    groups = result.summary["site_groups"]
    assert set(groups) == {OTHERS, "shop[0:1]"}
    assert groups["shop[0:1]"]["scan"]["degraded"] > 0
    assert groups[OTHERS]["scan"]["degraded"] == 0
    assert "nightly" not in groups["shop[0:1]"]  # a cloud-only workload has no site


def test_cutting_every_shop_is_cutting_the_cloud_for_their_requests(
    runs: dict[str, Simulated],
) -> None:
    every, cloud = runs["every_shop"], runs["cloud"]
    assert set(every.summary["site_groups"]) == {OTHERS, "shop"}
    rows = _window(every, "scan")
    assert _answered_by(every, rows, "gpu") == 0
    degraded = int(every.run.degraded[rows].sum())
    assert degraded == pytest.approx(int(cloud.run.degraded[_window(cloud, "scan")].sum()),
                                     rel=0.1)  # fmt: skip
    # after the heal both breakers close again: the cloud answers once more
    late = np.flatnonzero(every.run.arrival_s >= 1000.0)
    assert _answered_by(every, late, "gpu") > 0
    assert int(every.run.degraded[late].sum()) == 0


def test_the_same_seed_gives_the_same_bytes_with_a_site_cut(tmp_path: Path) -> None:
    events = [{"kind": "partition", "sites": ["shop"], "instances": 1, "start": 60, "end": 120,
               "mode": "reset"}]  # fmt: skip
    first = _run(tmp_path / "a", events, hours=0.05).summary
    again = _run(tmp_path / "b", events, hours=0.05).summary
    first.pop("plan"), again.pop("plan")
    assert orjson.dumps(first) == orjson.dumps(again)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"kind": "partition", "sites": ["warehouse-*"]}, "events[0].sites"),
        ({"kind": "partition", "tiers": ["gpu"], "instances": 2}, "name the sites"),
        ({"kind": "heat", "tiers": ["box"], "sites": ["shop"]}, "belong to partition events"),
        ({"kind": "partition"}, "needs tiers or sites"),
        ({"kind": "partition", "sites": ["shop"], "instances": 0}, "instances"),
        ({"kind": "partition", "sites": ["shop"], "instances": 3}, "at most the 2 site(s) of shop"),
    ],
)
def test_bad_site_partitions_name_the_file_and_field(
    tmp_path: Path, event: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=r"scenario\.yaml") as info:
        _run(tmp_path, [event], hours=0.01)
    assert field in str(info.value)


def test_many_cuts_of_one_site_entry_split_its_sites_without_losing_any(tmp_path: Path) -> None:
    fleet = copy.deepcopy(FLEET)
    fleet["sites"]["shop"]["site_count"] = 10
    path = write_fleet(tmp_path, fleet=fleet)
    scenario = tmp_path / "scenario.yaml"
    events = [{"kind": "partition", "sites": ["shop"], "instances": n, "start": 10 * i,
               "end": 10 * i + 30} for i, n in enumerate((4, 6, 9, 10, 10))]  # fmt: skip
    scenario.write_text(yaml.safe_dump({"name": "cuts", "events": events}))
    result = simulate_files(path, spec_path=None, profiles=[], scenario_path=scenario,
                            settings=SimSettings(hours=0.02))  # fmt: skip
    groups = result.summary["site_groups"]
    # 0-4 cut by all five, 4-6 by four, 6-9 by three, 9-10 by two; none uncut
    assert set(groups) == {OTHERS, "shop[0:4]", "shop[4:6]", "shop[6:9]", "shop[9:10]"}
    assert "scan" not in groups[OTHERS]  # every shop is cut by something
    scan = sum(g["scan"]["requests"] for g in groups.values() if "scan" in g)
    assert scan == result.summary["workloads"]["scan"]["total"]["requests"]
    share = groups["shop[0:4]"]["scan"]["requests"] / scan
    assert share == pytest.approx(0.4, abs=0.03)


def test_an_empty_or_missing_scenario_file_is_refused(tmp_path: Path) -> None:
    path = write_fleet(tmp_path)
    (tmp_path / "empty.yaml").write_text("")
    for name, words in (("empty.yaml", "events: [] for none"), ("none.yaml", "no such file")):
        with pytest.raises(ConfigError, match=name) as info:
            simulate_files(path, spec_path=None, profiles=[], scenario_path=tmp_path / name,
                           settings=SimSettings(hours=0.01))  # fmt: skip
        assert words in str(info.value)


def test_a_pattern_over_entries_of_different_sizes_cuts_the_smaller_whole(tmp_path: Path) -> None:
    fleet = copy.deepcopy(FLEET)
    fleet["sites"]["shop"]["site_count"] = 10
    fleet["sites"]["shop-small"] = {"region": "r1", "site_count": 2}
    path = write_fleet(tmp_path, fleet=fleet)
    scenario = tmp_path / "scenario.yaml"
    event = {"kind": "partition", "sites": ["shop*"], "start": 10, "end": 40}
    scenario.write_text(yaml.safe_dump({"name": "cuts", "events": [{**event, "instances": 5}]}))
    done = simulate_files(path, spec_path=None, profiles=[], scenario_path=scenario,
                          settings=SimSettings(hours=0.01))  # fmt: skip
    assert set(done.summary["site_groups"]) == {OTHERS, "shop[0:5]", "shop-small"}
    scenario.write_text(yaml.safe_dump({"name": "cuts", "events": [{**event, "instances": 11}]}))
    with pytest.raises(ConfigError, match=r"at most the 10 site\(s\) of shop"):
        simulate_files(path, spec_path=None, profiles=[], scenario_path=scenario,
                       settings=SimSettings(hours=0.01))  # fmt: skip
