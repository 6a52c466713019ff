"""The matrix and cost sections from the planner's decision matrix of the digits fleet,
with the zoo profiled here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tierwise.bench.profiles import ProfileSet
from tierwise.plan import decision_matrix
from tierwise.report.matrix import (
    MATRIX_SCORE_RANGE,
    budget_usd_per_million,
    cost_section,
    matrix_section,
)
from tierwise.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


def test_matrix_and_cost_sections_follow_the_planner(digits_profiles: ProfileSet) -> None:
    spec = load_spec(ROOT / "examples" / "fleets" / "digits.yaml")
    planner = decision_matrix(spec, [digits_profiles])
    placed = {"digits-personal": {"scanner"}, "digits": {"scanner", "cloud"}}
    section = matrix_section(planner, spec, placed)
    assert section.drivers == planner.drivers
    assert section.score_range == MATRIX_SCORE_RANGE
    # one row per workload and tier it lists, in its cascade order
    expected = [(w.name, t) for w in spec.workloads.values() for t in w.tiers]
    assert [(r.workload, r.tier) for r in section.rows] == expected
    for row in section.rows:
        score = next(t for t in planner.workload(row.workload).tiers if t.tier == row.tier)
        assert row.total == score.total
        for driver, cell in score.cells.items():
            assert row.scores[driver] == cell.score
            assert row.reasons[driver] == cell.reason
        if score.rank is None:
            prefix = (
                "placed in cascade" if row.tier in placed.get(row.workload, ()) else "infeasible: "
            )
            assert row.verdict.startswith(prefix)
            assert row.total is None
        else:
            assert row.verdict.startswith(f"rank {score.rank}")
    personal = {r.tier: r for r in section.rows if r.workload == "digits-personal"}
    # personal data never reaches the cloud: that cell is a hard constraint
    assert personal["cloud"].scores["privacy"] is None
    assert "privacy" in personal["cloud"].verdict
    assert personal["scanner"].verdict.endswith(", placed")
    # a tier infeasible alone (no variant it holds is accurate enough) may be a cascade stage
    digits = {r.tier: r for r in section.rows if r.workload == "digits"}
    assert digits["scanner"].verdict == "placed in cascade (alone: memory)"

    costs = {c.workload: c for c in cost_section(planner, spec, {"digits": 1.25})}
    assert list(costs["digits-batch"].usd_per_million_by_tier) == ["store-edge", "cloud"]
    assert costs["digits"].planned_usd_per_million == 1.25
    assert costs["digits-batch"].planned_usd_per_million is None
    cloud = next(t for t in planner.workload("digits").tiers if t.tier == "cloud")
    assert costs["digits"].usd_per_million_by_tier["cloud"] == cloud.usd_per_million
    # $10 a month over 200,000 requests a day
    batch = spec.workloads["digits-batch"]
    assert costs["digits-batch"].budget_usd_per_million == pytest.approx(
        10 / (200_000 * 365.25 / 12) * 1e6
    )
    assert budget_usd_per_million(batch) == costs["digits-batch"].budget_usd_per_million
    assert costs["digits"].budget_usd_per_million is None
    assert all(math.isfinite(v) for c in costs.values() for v in c.usd_per_million_by_tier.values())
