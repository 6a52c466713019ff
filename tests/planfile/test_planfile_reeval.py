"""A workload's ``reeval`` and ``slo_p99_ms`` in the plan: the reference tier defaults to
the cascade's last, must be a tier the workload's data may reach, and the SLO falls back
to the deadline, then to the planner's expected p99."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tierwise.planfile.schema import Plan

URL = "http://127.0.0.1:9"
TIERS = {
    "device": {"kind": "device", "site": "s1", "region": "r1", "url": URL, "model": "m",
               "rtt_p50_ms": 0, "rtt_p99_ms": 0, "cost_usd_per_inference": 0.0},
    "cloud": {"kind": "cloud", "region": "r1", "url": URL, "model": "m",
              "rtt_p50_ms": 10, "rtt_p99_ms": 20, "cost_usd_per_inference": 1e-5},
}  # fmt: skip
CASCADE = [{"tier": "device", "rule": "max_prob", "threshold": 0.8}, {"tier": "cloud"}]


def _plan(**fields: Any) -> Plan:
    workload = {"privacy": "public", "cascade": CASCADE, **fields}
    return Plan.model_validate({"tiers": TIERS, "workloads": {"w": workload}})


def test_the_reference_is_the_cascades_last_tier_unless_named() -> None:
    assert _plan(reeval={"rate": 0.1}).workloads["w"].reference_tier == "cloud"
    assert _plan(reeval={"rate": 0.1, "tier": "device"}).workloads["w"].reference_tier == "device"
    assert _plan().workloads["w"].reference_tier is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reeval": {"rate": 0.1, "tier": "ghost"}}, "reeval.tier: unknown tier 'ghost'"),
        ({"reeval": {"rate": 1.5}}, "reeval.rate"),
        ({"reeval": {"rate": 0.1, "max_in_flight": 0}}, "reeval.max_in_flight"),
        ({"reeval": {"rate": 0.1, "surprise": 1}}, "reeval.surprise"),
        ({"privacy": "sensitive", "reeval": {"rate": 0.1}, "cascade": [{"tier": "device"}]},
         "never re-evaluated"),
        ({"residency": "site", "reeval": {"rate": 0.1, "tier": "cloud"},
          "cascade": [{"tier": "device"}]}, "the data may not reach 'cloud'"),
        ({"slo_p99_ms": 0}, "slo_p99_ms"),
    ],
)  # fmt: skip
def test_bad_reeval_settings_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _plan(**fields)


def test_the_slo_falls_back_to_the_deadline_then_to_the_expected_p99() -> None:
    assert _plan(slo_p99_ms=120, deadline_ms=500).workloads["w"].slo_s == 0.12
    assert _plan(deadline_ms=500).workloads["w"].slo_s == 0.5
    assert _plan(expected={"p99_ms": 80}).workloads["w"].slo_s == 0.08
    assert _plan().workloads["w"].slo_s is None
