"""The decision matrix's scoring rules, checked by hand on a small fleet."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_helpers import batch, fleet, fleet_data, host_profiles, profile_set, variant

from tierwise.errors import ProfileError
from tierwise.plan import (
    DRIVERS,
    PlanSettings,
    ProfileCatalog,
    decision_matrix,
    driver_weights,
    network_ms,
)
from tierwise.plan.matrix_rules import cost_cell, operations_cell, score_by_steps
from tierwise.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def scores(matrix, workload: str = "w") -> dict[str, dict[str, int | None]]:  # type: ignore[no-untyped-def]
    row = matrix.workload(workload)
    return {t.tier: {d: c.score for d, c in t.cells.items()} for t in row.tiers}


def test_steps() -> None:
    steps = (0.25, 0.5, 0.75, 1.0)
    assert [score_by_steps(r, steps) for r in (0.0, 0.25, 0.26, 0.5, 0.75, 1.0, 1.01)] == [
        5, 5, 4, 4, 3, 2, None,
    ]  # fmt: skip


def test_network_path_sums_the_hops_below_the_tier() -> None:
    spec = fleet()
    w = spec.workloads["w"]
    assert network_ms(spec, w, spec.tiers["dev"], "p99") == 0.0
    assert network_ms(spec, w, spec.tiers["edge"], "p99") == 10.0
    assert network_ms(spec, w, spec.tiers["cloud"], "p99") == 60.0
    assert network_ms(spec, w, spec.tiers["cloud"], "p50") == 25.0
    assert network_ms(spec, w, spec.tiers["cloud"], "p95") == 60.0


def test_latency_scores_by_hand() -> None:
    # variant a's p99 is 4 ms on the host: 8 ms on dev (speed 0.5), 4 ms on edge and cloud
    matrix = decision_matrix(fleet(), [host_profiles()])
    row = matrix.workload("w")
    latency = {t.tier: t.cells["latency"] for t in row.tiers}
    assert latency["dev"].value == pytest.approx(8.0)  # 8 / 100 -> 5
    assert latency["edge"].value == pytest.approx(14.0)  # 4 + 10 -> 5
    assert latency["cloud"].value == pytest.approx(64.0)  # 4 + 60 = 64% of the SLO -> 3
    assert [latency[t].score for t in ("dev", "edge", "cloud")] == [5, 5, 3]
    assert "compute 4 + network 60" in latency["cloud"].reason


def test_slo_no_tier_meets_is_infeasible_with_the_figures() -> None:
    data = fleet_data()
    data["workloads"]["w"]["slo"] = {"p99_ms": 50.0}
    row = decision_matrix(fleet(data), [host_profiles()]).workload("w")
    cloud = next(t for t in row.tiers if t.tier == "cloud")
    assert not cloud.feasible
    assert cloud.cells["latency"].reason == "p99 64 ms (compute 4 + network 60) > SLO 50 ms"
    assert cloud.infeasible_because == [f"latency: {cloud.cells['latency'].reason}"]
    assert row.ranking == ["dev", "edge"]


def test_privacy_and_residency() -> None:
    data = fleet_data()
    data["workloads"]["w"].update(privacy="personal", residency="site")
    s = scores(decision_matrix(fleet(data)))
    assert s["dev"]["privacy"] == 5
    assert s["edge"]["privacy"] == 4
    assert s["cloud"]["privacy"] is None
    data["workloads"]["w"].update(privacy="public", residency="region")
    s = scores(decision_matrix(fleet(data)))
    assert s["cloud"]["privacy"] == 3
    data["tiers"]["cloud"]["region"] = "r2"
    data["workloads"]["w"]["residency"] = "any"
    s = scores(decision_matrix(fleet(data)))
    assert s["cloud"]["privacy"] == 2


def test_throughput_uses_the_best_batch_within_the_slo() -> None:
    matrix = decision_matrix(fleet(), [host_profiles()], settings=PlanSettings(max_utilization=0.5))
    row = matrix.workload("w")
    cells = {t.tier: t.cells["throughput"] for t in row.tiers}
    # edge: batch 8 (p99 10 ms + 10 ms network <= 100 ms): 2,000/s x 1 node x 0.5 = 1,000/s
    assert cells["edge"].value == pytest.approx(100 / 1000)
    assert cells["edge"].score == 5
    # dev: 10 devices at half speed: 1,000/s each x 10 x 0.5 = 5,000/s
    assert cells["dev"].value == pytest.approx(100 / 5000)
    # cloud: 2 instances (max_node_count): 2 x 2,000 x 0.5 = 2,000/s
    assert cells["cloud"].value == pytest.approx(100 / 2000)


def test_throughput_over_capacity_is_infeasible() -> None:
    data = fleet_data()
    data["workloads"]["w"]["traffic"] = {"requests_per_s": 1500.0}
    row = decision_matrix(fleet(data), [host_profiles()]).workload("w")
    edge = next(t for t in row.tiers if t.tier == "edge")
    # 1,500/s of 1,400/s (2,000 x 0.7)
    assert edge.cells["throughput"].score is None
    assert "over capacity" in edge.cells["throughput"].reason
    assert "1.4e+03/s" in edge.cells["throughput"].reason


def test_memory_and_accuracy() -> None:
    data = fleet_data()
    data["workloads"]["w"]["min_accuracy"] = 0.93
    row = decision_matrix(fleet(data), [host_profiles()]).workload("w")
    dev = next(t for t in row.tiers if t.tier == "dev")
    # b (95%) is chosen everywhere: 100 MiB of dev's 1,024 MiB is 9.8% -> 4
    assert dev.variant == "b"
    assert dev.cells["memory"].score == 4
    data["workloads"]["w"]["min_accuracy"] = 0.99
    row = decision_matrix(fleet(data), [host_profiles()]).workload("w")
    dev = next(t for t in row.tiers if t.tier == "dev")
    assert dev.cells["memory"].score is None
    assert "reaches min_accuracy 0.99 (best: b 95.0%)" in dev.cells["memory"].reason
    data = fleet_data()
    data["tiers"]["dev"]["hardware"]["memory_gib"] = 0.05  # 51.2 MiB: b does not fit
    data["workloads"]["w"]["variants"] = {"dev": "a"}
    row = decision_matrix(fleet(data)).workload("w")
    dev = next(t for t in row.tiers if t.tier == "dev")
    assert dev.cells["memory"].score == 3  # 10 of 51.2 MiB = 19.5% (<= 35%)


def test_cost_scores_against_the_cheapest_and_the_budget() -> None:
    data = fleet_data()
    data["workloads"]["w"]["budget"] = {"usd_per_million_inferences": 20.0}
    w = fleet(data).workloads["w"]
    assert cost_cell(w, 10.0, 10.0).score == 5
    assert cost_cell(w, 15.0, 10.0).score == 5  # 1.5x
    assert cost_cell(w, 16.0, 10.0).score == 4
    assert cost_cell(w, 20.0, 5.0).score == 3  # 4x
    over = cost_cell(w, 21.0, 10.0)
    assert over.score is None
    assert "> budget $20 per 1M" in over.reason
    data["workloads"]["w"]["budget"] = {"usd_per_month": 100.0}
    w = fleet(data).workloads["w"]
    # 100/s is 262.98M requests a month: $1 per 1M is $262.98/month
    assert cost_cell(w, 1.0, 1.0).score is None
    assert "$262.98/month" in cost_cell(w, 1.0, 1.0).reason


def test_operations_by_kind_and_node_count() -> None:
    spec = fleet()
    assert operations_cell(spec, spec.tiers["dev"]).score == 2
    assert operations_cell(spec, spec.tiers["edge"]).score == 4
    assert operations_cell(spec, spec.tiers["cloud"]).score == 5
    data = fleet_data()
    data["sites"]["s1"]["site_count"] = 60
    data["tiers"]["dev"]["capacity"]["node_count"] = 5000
    spec = fleet(data)
    assert operations_cell(spec, spec.tiers["edge"]).score == 2  # 60 boxes
    assert operations_cell(spec, spec.tiers["dev"]).score == 1


def test_weights_follow_the_workload() -> None:
    data = fleet_data()
    w = fleet(data).workloads["w"]
    assert driver_weights(w) == {d: (2.0 if d == "latency" else 1.0) for d in DRIVERS}
    data["workloads"]["w"].update(
        urgency="deferrable", privacy="personal", residency="site", budget={"usd_per_month": 1e6}
    )
    w = fleet(data).workloads["w"]
    assert driver_weights(w) == {
        "latency": 0.5, "privacy": 2.0, "throughput": 1.0, "memory": 1.0, "cost": 2.0,
        "operations": 1.0,
    }  # fmt: skip


def test_total_and_ranking_by_hand() -> None:
    row = decision_matrix(fleet(), [host_profiles()]).workload("w")
    dev = next(t for t in row.tiers if t.tier == "dev")
    assert {d: c.score for d, c in dev.cells.items()} == {
        "latency": 5, "privacy": 5, "throughput": 5, "memory": 5, "cost": 5, "operations": 2,
    }  # fmt: skip
    assert dev.total == round((2 * 5 + 5 + 5 + 5 + 5 + 2) / 7, 2) == 4.57
    assert row.recommended == "dev"
    assert row.ranking[0] == "dev"
    assert sorted(t.rank for t in row.tiers if t.rank) == [1, 2, 3]


def test_listed_tiers_rank_before_unlisted_ones() -> None:
    data = fleet_data()
    data["workloads"]["w"]["tiers"] = ["edge", "cloud"]
    row = decision_matrix(fleet(data), [host_profiles()]).workload("w")
    dev = next(t for t in row.tiers if t.tier == "dev")
    assert not dev.listed
    assert dev.feasible
    assert row.ranking[-1] == "dev"
    assert row.recommended in ("edge", "cloud")


def test_without_profiles_latency_is_the_network_and_capped() -> None:
    matrix = decision_matrix(fleet())
    assert not matrix.profiled
    row = matrix.workload("w")
    dev = next(t for t in row.tiers if t.tier == "dev")
    assert dev.cells["latency"].score == 3
    assert "compute not profiled" in dev.cells["latency"].reason
    assert dev.cells["throughput"].score == 3


def test_examples_score_without_profiles() -> None:
    for name in ("retail-shelf", "browser-assistant", "batch-summarization"):
        matrix = decision_matrix(load_spec(EXAMPLES / f"{name}.yaml"))
        for row in matrix.workloads:
            assert row.recommended is not None, (name, row.workload)
    retail = decision_matrix(load_spec(EXAMPLES / "retail-shelf.yaml")).workload("shelf-detect")
    cloud = next(t for t in retail.tiers if t.tier == "reid-cloud")
    assert not cloud.feasible
    assert any("privacy 'personal'" in r for r in cloud.infeasible_because)


def test_profile_for_a_variant_the_spec_lacks() -> None:
    bad = profile_set([variant("zz", [batch(1, 1.0, 10.0)])])
    with pytest.raises(ProfileError) as info:
        ProfileCatalog(fleet(), [host_profiles(), bad], ["good.json", "bad.json"])
    assert str(info.value) == (
        "bad.json: profiles[0].variant: expected a variant the spec has (a, b), got 'zz'"
    )
    with pytest.raises(ProfileError, match=r"tiers\[0\]: expected a tier of the spec"):
        ProfileCatalog(fleet(), [profile_set([variant("a", [batch(1, 1.0, 10.0)])], ["ghost"])])


def test_a_profile_measured_on_the_tier_beats_the_scaled_host_one() -> None:
    spec = fleet()
    on_dev = profile_set([variant("a", [batch(1, 3.0, 50.0)])], tiers=["dev"])
    catalog = ProfileCatalog(spec, [host_profiles(), on_dev])
    dev = catalog.estimate("m", "a", spec.tiers["dev"])
    assert dev is not None
    assert dev.single.p99_ms == 3.0
    assert dev.source == "measured on tier 'dev'"
    edge = catalog.estimate("m", "a", spec.tiers["edge"])
    assert edge is not None
    assert edge.single.p99_ms == 4.0  # host profile, speed factor 1
    only_host = ProfileCatalog(spec, [host_profiles()]).estimate("m", "a", spec.tiers["dev"])
    assert only_host is not None
    assert only_host.single.p99_ms == 8.0  # 4 ms / 0.5
    assert only_host.single.throughput_per_s == 250.0
    assert "x0.5 (speed_factor)" in only_host.source


def test_gpu_profiles_only_where_the_tier_has_cuda() -> None:
    spec = fleet()
    gpu = profile_set([variant("b", [batch(1, 1.0, 5000.0)], provider="CUDAExecutionProvider")])
    catalog = ProfileCatalog(spec, [host_profiles(), gpu])
    cloud = catalog.estimate("m", "b", spec.tiers["cloud"])
    assert cloud is not None
    assert cloud.provider == "CPUExecutionProvider"  # the cloud tier lacks the cuda tag
    data = fleet_data()
    data["tiers"]["cloud"]["hardware"]["tags"] = ["cpu", "cuda"]
    spec = fleet(data)
    cloud = ProfileCatalog(spec, [host_profiles(), gpu]).estimate("m", "b", spec.tiers["cloud"])
    assert cloud is not None
    assert cloud.provider == "CUDAExecutionProvider"
