"""The placement optimizer: the same optimum as brute force on small fleets, cascades and
periods as designed, and infeasible fleets that name the workload and the constraint."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from plan_helpers import curve_ab, fleet, fleet_data, host_profiles, random_fleet

from tierwise.errors import InfeasiblePlanError
from tierwise.plan import (
    PlacementProblem,
    PlanResult,
    PlanSettings,
    build_problem,
    evaluate,
    greedy_plan,
    plan_fleet,
    solve_problem,
)
from tierwise.spec import DAYS_PER_MONTH, HOURS_PER_MONTH

EXACT = PlanSettings(mip_rel_gap=0.0)


def brute_force(problem: PlacementProblem) -> float | None:
    best = None
    for choice in itertools.product(*(range(len(w.options)) for w in problem.workloads)):
        result = evaluate(
            problem.workloads, choice, problem.models, problem.periods, problem.settings
        )
        if result.feasible and (best is None or result.total_usd_per_month < best):
            best = result.total_usd_per_month
    return best


def random_case(seed: int) -> PlacementProblem:
    rng = random.Random(seed)
    spec = fleet(random_fleet(rng, workloads=rng.randint(2, 4)))
    curves = [curve_ab((0.02, 0.925, False), (0.1, 0.94, True), (0.3, 0.948, False))]
    return build_problem(spec, [host_profiles()], calibrations=curves, settings=EXACT)


@pytest.mark.parametrize("seed", range(12))
def test_same_optimum_as_brute_force(seed: int) -> None:
    problem = random_case(seed)
    if any(not w.options for w in problem.workloads):
        with pytest.raises(InfeasiblePlanError):
            solve_problem(problem)
        return
    expected = brute_force(problem)
    if expected is None:
        with pytest.raises(InfeasiblePlanError) as info:
            solve_problem(problem)
        assert info.value.constraint == "traffic"
        return
    result = solve_problem(problem)
    assert result.feasible
    assert result.status == "optimal"
    assert result.total_usd_per_month == pytest.approx(expected, rel=1e-6, abs=1e-9)
    greedy = greedy_plan(problem)
    if greedy is not None:
        assert result.total_usd_per_month <= greedy.total_usd_per_month + 1e-9


def test_the_brute_force_cases_are_not_trivial() -> None:
    """Over the seeds, plans mix single tiers and cascades, some workloads have no
    placement, and greedy is beaten at least once."""
    labels: set[str] = set()
    no_option = beaten = 0
    for seed in range(12):
        problem = random_case(seed)
        if any(not w.options for w in problem.workloads):
            no_option += 1
            continue
        result = solve_problem(problem)
        labels.update(p.option.label for p in result.placements.values())
        greedy = greedy_plan(problem)
        if greedy is None or greedy.total_usd_per_month > result.total_usd_per_month + 1e-6:
            beaten += 1
    assert {"dev/a > edge/b", "edge/a", "edge/b"} <= labels, labels
    assert any(label.startswith("dev/") and ">" not in label for label in labels)
    assert 0 < no_option < 6
    assert beaten >= 1


def test_cheapest_tier_by_hand() -> None:
    # w: 100/s, a fits everywhere. dev: 10 devices x $0.10 updates = $1/month; edge: $10;
    # cloud: a $1 instance-hour = $730.5/month.
    result = plan_fleet(fleet(), [host_profiles()], settings=EXACT)
    (placement,) = result.placements.values()
    assert placement.option.label == "dev/a"
    assert result.total_usd_per_month == pytest.approx(1.0)
    assert result.tiers["dev"].used
    assert not result.tiers["edge"].used


def test_capacity_moves_traffic_up() -> None:
    data = fleet_data()
    data["tiers"]["dev"]["capacity"]["node_count"] = 1  # one device: 1,000/s x 0.7 for a
    data["workloads"]["w"]["traffic"] = {"requests_per_s": 1000.0}
    result = plan_fleet(fleet(data), [host_profiles()], settings=EXACT)
    # edge: a at batch 8 gives 2,000/s x 0.7 = 1,400/s; $10/month
    assert result.placements["w"].option.label == "edge/a"
    assert result.total_usd_per_month == pytest.approx(10.0)


def test_cloud_instances_follow_the_hours() -> None:
    data = fleet_data()
    data["workloads"]["w"]["privacy"] = "public"
    data["workloads"]["w"]["tiers"] = ["cloud"]
    data["workloads"]["w"]["traffic"] = {
        "requests_per_s": 1000.0,
        "hourly_profile": [0.0] * 12 + [1.0] * 12,
    }
    result = plan_fleet(fleet(data), [host_profiles()], settings=EXACT)
    cloud = result.tiers["cloud"]
    # 2,000/s in busy hours; a gives 2,000/s per replica at 70%: 1,400/s -> 2 instances
    assert cloud.instances == (0,) * 12 + (2,) * 12
    assert result.periods == (1.0,) * 24
    assert cloud.usd_per_month == pytest.approx(2 * 12 * DAYS_PER_MONTH * 1.0)


def test_a_cascade_when_accuracy_needs_the_big_model() -> None:
    data = fleet_data()
    data["workloads"]["w"]["min_accuracy"] = 0.93
    # b alone in the cloud would need 1,000 / (400 x 0.7) = 4 instances of the 2 allowed
    data["workloads"]["w"]["traffic"] = {"requests_per_s": 1000.0}
    data["tiers"]["dev"]["hardware"]["memory_gib"] = 0.05  # b (100 MiB) fits nowhere low
    data["tiers"]["edge"]["hardware"]["memory_gib"] = 0.05
    curve = curve_ab((0.005, 0.92, False), (0.04, 0.931, True), (0.2, 0.945, False))
    result = plan_fleet(fleet(data), [host_profiles()], calibrations=[curve], settings=EXACT)
    option = result.placements["w"].option
    assert [(s.tier, s.variant) for s in option.stages][-1] == ("cloud", "b")
    assert len(option.stages) == 2
    first, last = option.stages
    assert (first.rule, first.threshold, first.reach) == ("max_prob", 0.51, 1.0)
    assert (last.rule, last.threshold, last.reach) == (None, None, 0.04)
    assert option.accuracy == 0.931  # the cheapest setting reaching 0.93
    # 4% reach the cloud: p99 runs through it (compute a + b, network to the cloud), the
    # p95 and p50 stop at the first stage
    low = first.tier
    assert option.latency_ms["p99"] == pytest.approx({"dev": 8.0, "edge": 4.0}[low] + 20.0 + 60.0)
    assert option.latency_ms["p95"] == pytest.approx({"dev": 4.0, "edge": 2.0 + 10.0}[low])


def test_without_min_accuracy_a_cascade_runs_at_the_chosen_setting() -> None:
    data = fleet_data()
    data["workloads"]["w"]["tiers"] = ["edge", "cloud"]
    spec = fleet(data)
    curve = curve_ab((0.01, 0.91, False), (0.1, 0.94, True))
    problem = build_problem(spec, [host_profiles()], calibrations=[curve], settings=EXACT)
    cascades = [o for o in problem.workloads[0].options if len(o.stages) == 2]
    assert len(cascades) == 1
    assert cascades[0].stages[1].reach == 0.1


def expect_infeasible(data: dict[str, object], constraint: str) -> InfeasiblePlanError:
    with pytest.raises(InfeasiblePlanError) as info:
        plan_fleet(fleet(data), [host_profiles()], settings=EXACT)
    assert info.value.workload == "w"
    assert info.value.constraint == constraint
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"workloads.w.{constraint}: no feasible placement; ")
    return info.value


def test_an_slo_no_tier_can_meet() -> None:
    data = fleet_data()
    data["workloads"]["w"]["slo"] = {"p99_ms": 3.0}
    error = expect_infeasible(data, "slo.p99_ms")
    # the fastest: a on the edge or cloud takes 4 ms of compute, plus the network; on the
    # device 8 ms
    assert "the fastest placement, dev/a, takes 8 ms at p99" in str(error)
    assert "expected slo.p99_ms >= 8, got 3" in str(error)


def test_an_slo_percentile_other_than_p99() -> None:
    data = fleet_data()
    data["workloads"]["w"]["slo"] = {"p50_ms": 1.0, "p99_ms": 100.0}
    error = expect_infeasible(data, "slo.p50_ms")
    # a's p50 is 1 ms on the host: 2 ms on the device, 1 + 5 ms network on the edge
    assert "the fastest placement, dev/a, takes 2 ms at p50" in str(error)
    assert "expected slo.p50_ms >= 2, got 1" in str(error)


def test_accuracy_no_variant_reaches() -> None:
    data = fleet_data()
    data["workloads"]["w"]["min_accuracy"] = 0.97
    error = expect_infeasible(data, "min_accuracy")
    assert "is right 95.00% of the time; expected min_accuracy <= 0.95, got 0.97" in str(error)


def test_a_budget_too_small() -> None:
    data = fleet_data()
    data["tiers"]["dev"]["cost"]["update_usd_per_month"] = 10.0  # $100/month for 10 devices
    data["workloads"]["w"]["tiers"] = ["dev"]
    data["workloads"]["w"]["budget"] = {"usd_per_month": 0.001}
    error = expect_infeasible(data, "budget.usd_per_month")
    assert "expected budget.usd_per_month >=" in str(error)


def test_no_profile() -> None:
    from plan_helpers import batch, profile_set, variant

    from tierwise.plan import ProfileCatalog

    only_b = profile_set([variant("b", [batch(1, 20.0, 100.0)])], tiers=["cloud"])
    data = fleet_data()
    data["workloads"]["w"]["tiers"] = ["dev", "edge"]
    spec = fleet(data)
    with pytest.raises(InfeasiblePlanError) as info:
        plan_fleet(spec, ProfileCatalog(spec, [only_b]), settings=EXACT)
    assert info.value.constraint == "model"
    assert "has no profile usable on tier" in str(info.value)


def test_together_the_workloads_overload_a_tier() -> None:
    data = fleet_data()
    data["tiers"]["dev"]["capacity"]["node_count"] = 1
    base = data["workloads"]["w"]
    data["workloads"] = {
        # personal data at the site: dev or edge only; each fits alone, not together
        name: {**base, "tiers": ["dev", "edge"], "privacy": "personal", "residency": "site",
               "traffic": {"requests_per_s": rate}}
        for name, rate in (("w", 1300.0), ("v", 1000.0), ("u", 500.0))
    }  # fmt: skip
    with pytest.raises(InfeasiblePlanError) as info:
        plan_fleet(fleet(data), [host_profiles()], settings=EXACT)
    error = info.value
    assert error.constraint == "traffic"
    assert error.workload == "w"  # the largest load on the overloaded tier
    assert "expected more capacity on" in str(error)


def test_traffic_one_workload_alone_cannot_fit() -> None:
    data = fleet_data()
    data["workloads"]["w"]["traffic"] = {"requests_per_s": 1e6}
    error = expect_infeasible(data, "traffic")
    assert "busy replicas on tier" in str(error)


def test_greedy_is_not_better_than_the_optimum() -> None:
    for seed in range(5):
        rng = random.Random(100 + seed)
        spec = fleet(random_fleet(rng, workloads=6))
        problem = build_problem(spec, [host_profiles()], settings=EXACT)
        if any(not w.options for w in problem.workloads):
            continue
        greedy = greedy_plan(problem)
        try:
            best = solve_problem(problem)
        except InfeasiblePlanError:
            assert greedy is None
            continue
        if greedy is not None:
            assert best.total_usd_per_month <= greedy.total_usd_per_month + 1e-9


def test_month_hours() -> None:
    assert HOURS_PER_MONTH == 24 * DAYS_PER_MONTH


def _two_models(
    edge_gib: float, *, same_model: bool = False, tiers: list[str] | None = None
) -> dict[str, Any]:
    """Workloads w and v, each with a model whose variants (5,000 MiB) fit the edge alone."""
    data = fleet_data()
    data["tiers"]["edge"]["hardware"]["memory_gib"] = edge_gib
    data["models"] = {
        name: {"variants": {v: {"uri": f"{name}-{v}.onnx", "size_mib": 5000.0} for v in "ab"}}
        for name in ("m", "n")
    }
    base = data["workloads"]["w"]
    data["workloads"] = {
        name: {**base, "model": "m" if same_model else model, "tiers": tiers or ["edge", "cloud"],
               "traffic": {"requests_per_s": 10.0}}
        for name, model in (("w", "m"), ("v", "n"))
    }  # fmt: skip
    return data


def test_variants_placed_together_must_fit_one_node() -> None:
    def plan(edge_gib: float) -> PlanResult:
        data = _two_models(edge_gib)
        data["workloads"]["w"]["tiers"] = ["edge"]  # w stays at the site; v may go up
        return plan_fleet(fleet(data), [host_profiles()], settings=EXACT)

    roomy = plan(16.0)
    assert {p.option.stages[0].tier for p in roomy.placements.values()} == {"edge"}
    assert roomy.tiers["edge"].memory_mib == 10000.0
    tight = plan(8.0)
    tiers = {name: p.option.stages[0].tier for name, p in tight.placements.items()}
    assert tiers == {"w": "edge", "v": "cloud"}  # one 5,000 MiB model per 8 GiB node
    assert tight.tiers["edge"].memory_mib == 5000.0
    assert tight.tiers["edge"].node_memory_mib == 8192.0
    assert tight.feasible
    assert tight.total_usd_per_month > roomy.total_usd_per_month


def test_one_variant_serving_two_workloads_is_loaded_once() -> None:
    shared = plan_fleet(fleet(_two_models(8.0, same_model=True)), [host_profiles()], settings=EXACT)
    assert {p.option.stages[0].tier for p in shared.placements.values()} == {"edge"}
    assert shared.tiers["edge"].memory_mib == 5000.0


def test_the_optimum_with_memory_is_the_brute_force_one() -> None:
    problem = build_problem(fleet(_two_models(8.0)), [host_profiles()], settings=EXACT)
    expected = brute_force(problem)
    both_on_edge = [
        next(j for j, o in enumerate(w.options) if o.stages[0].tier == "edge")
        for w in problem.workloads
    ]
    assert not evaluate(
        problem.workloads, both_on_edge, problem.models, problem.periods, problem.settings
    ).feasible
    assert solve_problem(problem).total_usd_per_month == pytest.approx(expected)


def test_variants_that_cannot_fit_together_anywhere_name_memory() -> None:
    with pytest.raises(InfeasiblePlanError) as info:
        plan_fleet(fleet(_two_models(8.0, tiers=["edge"])), [host_profiles()], settings=EXACT)
    error = str(info.value)
    assert info.value.constraint == "model"
    assert "tier 'edge' would need 1e+04 MiB on each node" in error
    assert "(5e+03 MiB), n/" in error  # the two models' variants, one of each
    assert "a node has 8192 MiB" in error


def test_greedy_leaves_out_placements_that_would_overfill_memory() -> None:
    data = _two_models(8.0)
    data["workloads"]["w"]["tiers"] = ["edge"]
    greedy = greedy_plan(build_problem(fleet(data), [host_profiles()], settings=EXACT))
    assert greedy is not None
    assert greedy.feasible
    assert greedy.placements["v"].option.stages[0].tier == "cloud"
    data["workloads"]["v"]["tiers"] = ["edge"]
    assert greedy_plan(build_problem(fleet(data), [host_profiles()], settings=EXACT)) is None
