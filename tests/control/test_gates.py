"""Rollout gates: directions, limits, no data, inconclusive analyses, parsing."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tierwise.control.cohort import CohortStats
from tierwise.control.gates import (
    GATES,
    Gate,
    GateResult,
    analyse,
    default_gates,
    gates_from,
    parse_gate,
)
from tierwise.errors import ConfigError

BASELINE = CohortStats(
    nodes=8, requests=2000, errors=4, p99_s=0.0178, error_rate=0.002, agreement=0.96,
    energy_j_per_inference=0.36, fallback_rate=0.01, checks=400,
)  # fmt: skip
#: a canary as good as the baseline
HEALTHY = replace(BASELINE, nodes=2, requests=500, p99_s=0.0190, error_rate=0.004)


def _result(gate: str, canary: CohortStats, baseline: CohortStats = BASELINE) -> GateResult:
    found = analyse(canary, baseline, gates_from([]))
    (result,) = [r for r in found.results if r.gate == gate]
    return result


def test_the_gate_table_and_its_defaults() -> None:
    assert list(GATES) == [
        "p99_ratio", "error_rate_delta", "agreement_delta", "energy_ratio", "fallback_delta",
    ]  # fmt: skip
    assert {g.name: g.limit for g in default_gates()} == {
        "p99_ratio": 1.5, "error_rate_delta": 0.01, "agreement_delta": -0.05,
        "energy_ratio": 1.3, "fallback_delta": 0.05,
    }  # fmt: skip
    assert GATES["agreement_delta"].op == ">="
    assert all(GATES[name].op == "<=" for name in GATES if name != "agreement_delta")
    assert [str(g) for g in default_gates()][:3] == [
        "p99_ratio<=1.5", "error_rate_delta<=0.01", "agreement_delta>=-0.05",
    ]  # fmt: skip


def test_a_healthy_canary_passes_every_gate() -> None:
    analysis = analyse(HEALTHY, BASELINE, default_gates())
    assert [r.verdict for r in analysis.results] == ["pass"] * 5
    assert analysis.conclusive
    assert analysis.failed == []
    assert analysis.verdict == "pass"


@pytest.mark.parametrize(
    ("gate", "change", "value", "text"),
    [
        ("p99_ratio", {"p99_s": 0.0412}, 0.0412 / 0.0178,
         "p99_ratio 2.31 > 1.5 (canary p99 41.2 ms, baseline 17.8 ms)"),
        ("error_rate_delta", {"error_rate": 0.036}, 0.034,
         "error_rate_delta 0.034 > 0.01 (canary error rate 3.6%, baseline 0.2%)"),
        ("agreement_delta", {"agreement": 0.88}, -0.08,
         "agreement_delta -0.08 < -0.05 (canary agreement 88%, baseline 96%)"),
        ("energy_ratio", {"energy_j_per_inference": 0.52}, 0.52 / 0.36,
         "energy_ratio 1.44 > 1.3 (canary energy 0.52 J/inference, baseline 0.36 J/inference)"),
        ("fallback_delta", {"fallback_rate": 0.08}, 0.07,
         "fallback_delta 0.07 > 0.05 (canary fallback rate 8%, baseline 1%)"),
    ],
)  # fmt: skip
def test_each_gate_fails_in_its_own_direction(
    gate: str, change: dict[str, float], value: float, text: str
) -> None:
    canary = replace(HEALTHY, **change)
    result = _result(gate, canary)
    assert result.verdict == "fail"
    assert result.value == pytest.approx(value)
    assert result.canary == change[GATES[gate].statistic]
    assert result.baseline == getattr(BASELINE, GATES[gate].statistic)
    assert result.text() == text
    analysis = analyse(canary, BASELINE, default_gates())
    assert analysis.failed == [gate]
    assert analysis.verdict == "fail"
    # the same change on the baseline's side is an improvement, never a failure
    assert _result(gate, HEALTHY, replace(BASELINE, **change)).verdict == "pass"


def test_a_better_agreement_passes_and_a_worse_one_within_the_limit_passes() -> None:
    assert _result("agreement_delta", replace(HEALTHY, agreement=0.99)).verdict == "pass"
    within = _result("agreement_delta", replace(HEALTHY, agreement=0.92))
    assert within.verdict == "pass"
    assert within.text() == "agreement_delta -0.04 >= -0.05 (canary agreement 92%, baseline 96%)"


def test_limits_are_inclusive_despite_float_noise() -> None:
    at_limit = replace(HEALTHY, error_rate=0.04)
    baseline = replace(BASELINE, error_rate=0.03)  # 0.04 - 0.03 = 0.010000000000000002
    assert _result("error_rate_delta", at_limit, baseline).verdict == "pass"


def test_p99_passes_within_the_slack_when_both_are_tiny() -> None:
    canary, baseline = replace(HEALTHY, p99_s=0.003), replace(BASELINE, p99_s=0.001)
    result = _result("p99_ratio", canary, baseline)
    assert result.verdict == "pass"
    assert result.value == pytest.approx(3.0)
    assert result.text() == (
        "p99_ratio 3 > 1.5 but within the 2 ms slack (canary p99 3 ms, baseline 1 ms)"
    )
    tight = analyse(canary, baseline, default_gates(), p99_slack_s=0.001)
    assert tight.failed == ["p99_ratio"]
    slow = replace(HEALTHY, p99_s=0.0045)  # 3.5 ms above: beyond the slack
    assert _result("p99_ratio", slow, baseline).verdict == "fail"


@pytest.mark.parametrize("statistic", ["p99_s", "error_rate", "agreement",
                                       "energy_j_per_inference", "fallback_rate"])  # fmt: skip
def test_a_figure_missing_on_either_side_is_no_data_never_a_failure(statistic: str) -> None:
    (gate,) = [name for name, spec in GATES.items() if spec.statistic == statistic]
    for canary, baseline in (
        (replace(HEALTHY, **{statistic: None}), BASELINE),
        (replace(HEALTHY, p99_s=1.0, error_rate=0.9, agreement=0.1, energy_j_per_inference=9.0,
                 fallback_rate=0.9), replace(BASELINE, **{statistic: None})),
    ):  # fmt: skip
        result = _result(gate, canary, baseline)
        assert result.verdict == "no_data"
        assert result.value is None
        assert result.text().startswith(f"{gate}: no data (canary ")
        assert gate not in analyse(canary, baseline, default_gates()).failed


def test_a_ratio_to_a_zero_baseline_is_no_data() -> None:
    result = _result("energy_ratio", HEALTHY, replace(BASELINE, energy_j_per_inference=0.0))
    assert result.verdict == "no_data"


def test_too_few_requests_make_the_analysis_inconclusive() -> None:
    bad = replace(HEALTHY, requests=19, p99_s=1.0, error_rate=0.5)
    analysis = analyse(bad, BASELINE, default_gates(), min_requests=20)
    assert not analysis.conclusive
    assert analysis.verdict == "inconclusive"
    assert [r.verdict for r in analysis.results[:2]] == ["fail", "fail"]  # reported...
    assert analysis.failed == []  # ...but failing nothing
    assert analyse(bad, BASELINE, default_gates(), min_requests=19).failed == [
        "p99_ratio", "error_rate_delta",
    ]  # fmt: skip
    thin_baseline = analyse(bad, replace(BASELINE, requests=5), default_gates(), min_requests=10)
    assert not thin_baseline.conclusive


def test_an_analysis_serialises_to_json() -> None:
    analysis = analyse(replace(HEALTHY, p99_s=0.05), BASELINE, default_gates())
    doc = json.loads(json.dumps(analysis.to_dict()))
    assert doc["verdict"] == "fail"
    assert doc["failed"] == ["p99_ratio"]
    assert doc["canary"]["p99_s"] == 0.05
    assert doc["baseline"] == BASELINE.to_dict()
    assert doc["results"][0]["text"].startswith("p99_ratio 2.81 > 1.5")
    assert doc["results"][0]["verdict"] == "fail"
    assert doc["min_requests"] == 20


def test_analyse_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match=r"^min_requests: "):
        analyse(HEALTHY, BASELINE, default_gates(), min_requests=0)
    with pytest.raises(ConfigError, match=r"^p99_slack_s: "):
        analyse(HEALTHY, BASELINE, default_gates(), p99_slack_s=-0.001)
    with pytest.raises(ConfigError, match=r"^gates: expected Gate objects"):
        analyse(HEALTHY, BASELINE, ["p99_ratio=2"])  # type: ignore[list-item]


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("p99_ratio=1.2", Gate("p99_ratio", 1.2)),
        ("p99_ratio<=1.2", Gate("p99_ratio", 1.2)),
        (" p99_ratio <= 2 ", Gate("p99_ratio", 2.0)),
        ("agreement_delta>=-0.1", Gate("agreement_delta", -0.1)),
        ("agreement_delta=-0.1", Gate("agreement_delta", -0.1)),
        ("error_rate_delta=0", Gate("error_rate_delta", 0.0)),
        ("energy_ratio=1e0", Gate("energy_ratio", 1.0)),
    ],
)
def test_gates_parse_with_or_without_their_operator(text: str, gate: Gate) -> None:
    assert parse_gate(text) == gate
    assert parse_gate(str(gate)) == gate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p99_ratio>=1.2", "gate: expected p99_ratio=LIMIT or p99_ratio<=LIMIT (p99_ratio sets an "
                           "upper limit), got 'p99_ratio>=1.2'"),
        ("agreement_delta<=-0.1", "gate: expected agreement_delta=LIMIT or agreement_delta>=LIMIT "
                                  "(agreement_delta sets a lower limit)"),
        ("latency=1", "gate: expected one of p99_ratio, error_rate_delta, agreement_delta, "
                      "energy_ratio, fallback_delta, got 'latency'"),
        ("p99_ratio=fast", "gate p99_ratio: expected a number as the limit, got 'fast'"),
        ("p99_ratio=nan", "gate p99_ratio: expected a finite number as the limit, got nan"),
        ("p99_ratio=inf", "gate p99_ratio: expected a finite number as the limit, got inf"),
        ("p99_ratio=-1", "gate p99_ratio: expected a ratio above 0, got -1.0"),
        ("fallback_delta=1.5", "gate fallback_delta: expected a difference of shares in [-1, 1]"),
        ("p99_ratio", "gate: expected NAME=LIMIT, NAME<=LIMIT or NAME>=LIMIT"),
        ("p99_ratio<1.2", "gate: expected NAME=LIMIT"),
        ("p99_ratio=off", "gate p99_ratio: expected a number as the limit, got 'off'"),
    ],
)  # fmt: skip
def test_bad_gates_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_gate(text)
    assert str(caught.value).startswith(message), str(caught.value)


def test_gates_built_in_code_are_checked() -> None:
    with pytest.raises(ConfigError, match="expected one of p99_ratio"):
        Gate("speed", 1.0)
    with pytest.raises(ConfigError, match="finite number"):
        Gate("p99_ratio", True)


def test_gates_from_overrides_defaults_by_name_and_drops_some() -> None:
    assert gates_from([]) == default_gates()
    changed = gates_from(["agreement_delta>=-0.1", "p99_ratio=2", "energy_ratio=off"])
    assert [str(g) for g in changed] == [
        "p99_ratio<=2", "error_rate_delta<=0.01", "agreement_delta>=-0.1", "fallback_delta<=0.05",
    ]  # fmt: skip
    assert gates_from(["none", "p99_ratio=1.2"]) == [Gate("p99_ratio", 1.2)]
    assert gates_from(["p99_ratio=1.2", "NONE"]) == []
    assert gates_from(["energy_ratio=off", "energy_ratio=2"])[-2] == Gate("energy_ratio", 2.0)
    assert gates_from(["p99_ratio=3", "p99_ratio=1.1"])[0] == Gate("p99_ratio", 1.1)
    with pytest.raises(ConfigError, match="p99_ratio=off"):
        gates_from(["p99_ratio<=off"])
    with pytest.raises(ConfigError, match="expected one of p99_ratio"):
        gates_from(["speed=off"])
    with pytest.raises(ConfigError, match="a list of gates"):
        gates_from("p99_ratio=2")
