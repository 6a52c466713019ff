"""The simulator against the live demo fleet (short levels): the tiers are measured first,
the same seeded requests are answered on the same tiers live and simulated, and a
partition of the cloud's link degrades the same requests in both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierwise.demo import DemoSettings
from tierwise.demo.fidelity import EDGE_HOLD_MS, LoadLevel, default_levels, run_fidelity


def test_live_and_simulated_answer_the_same_requests_on_the_same_tiers(
    shared_zoo_dir: Path, tmp_path: Path
) -> None:
    settings = DemoSettings(zoo_dir=shared_zoo_dir, work_dir=tmp_path / "demo", profile_runs=20)
    levels = [
        LoadLevel("light", {"parcel-codes": 25.0, "customs-forms": 8.0}, 8.0),
        LoadLevel("cut", {"parcel-codes": 25.0}, 9.0, ("gpu-pool", 3.0, 6.0)),
    ]
    result = run_fidelity(settings, levels)
    # measured first: each edge box answers about 1000 / 8 ms calls a second (the
    # rehearsal's hold), and every call costs some time outside the model (the plan runs
    # one or two variants at the edge, as the measured profiles decide)
    assert 1 <= len(result.capacity_rps) <= 2
    for capacity in result.capacity_rps.values():
        assert 0.6 * 1000 / EDGE_HOLD_MS < capacity < 1.1 * 1000 / EDGE_HOLD_MS
    assert all(v > 0 for v in result.call_overhead_ms.values())
    rows = {(r.level, r.workload): r for r in result.rows}
    assert set(rows) == {("light", "parcel-codes"), ("light", "customs-forms"),
                         ("cut", "parcel-codes")}  # fmt: skip
    for row in rows.values():
        p, m = row.predicted, row.measured
        assert p.requests == m.requests > 20
        # the same held-out rows escalate the same way: the same tiers answer, at the
        # same cost, in both
        assert p.share == pytest.approx(m.share, abs=0.021)
        assert p.usd_per_million == pytest.approx(m.usd_per_million, rel=0.05)
        assert row.within["share"]
        assert row.within["cost"]
        # latency: the round trips and the edge's hold dominate both (a loose bound: this
        # machine is shared with the rest of the suite)
        assert p.p50_ms == pytest.approx(m.p50_ms, rel=0.5)
    cut = rows[("cut", "parcel-codes")]
    assert cut.measured.degraded > 0  # the cloud's answers were lost while it was cut
    assert cut.predicted.degraded == pytest.approx(cut.measured.degraded, abs=2)
    doc = result.to_dict()
    assert [r["level"] for r in doc["rows"]].count("light") == 2


def test_default_levels_load_each_edge_tier_near_what_it_answers() -> None:
    plan = {
        "tiers": {"cam": {"kind": "device"}, "box": {"kind": "edge"}, "gpu": {"kind": "cloud"}},
        "workloads": {
            "a": {"cascade": [{"tier": "cam"}, {"tier": "box"}, {"tier": "gpu"}],
                  "expected": {"reach": [1.0, 0.5, 0.05]}},
            "b": {"cascade": [{"tier": "box"}]},
        },
    }  # fmt: skip
    light, heavy, cut = default_levels(plan, {"box": 100.0}, duration_s=30.0)
    # 70 calls a second at the box, half from each workload: a reaches it half the time
    assert heavy.rates_rps == pytest.approx({"a": 70.0, "b": 35.0})
    assert light.rates_rps == pytest.approx({"a": 10.5, "b": 5.25})
    assert cut.partition == ("gpu", 10.0, 20.0)
