"""Queries print as PromQL and evaluate on a scrape the way Prometheus would."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tierwise.observe import queries as q
from tierwise.observe.promql import (
    Counter,
    Gauge,
    Match,
    Quantile,
    Ratio,
    Sample,
    Scaled,
    histogram_quantile,
    prom_duration,
    with_match,
)

SCRAPE = """
# TYPE tierwise_router_requests_total counter
tierwise_router_requests_total{workload="digits",tier="edge",outcome="answered"} 80
tierwise_router_requests_total{workload="digits",tier="cloud",outcome="answered"} 20
tierwise_router_requests_total{workload="batch",tier="-",outcome="deferred"} 4
# TYPE tierwise_router_fallbacks_total counter
tierwise_router_fallbacks_total{workload="digits",tier="cloud",cause="error"} 5
tierwise_router_fallbacks_total{workload="digits",tier="cloud",cause="timeout"} 5
# TYPE tierwise_router_cost_usd_total counter
tierwise_router_cost_usd_total{workload="digits",tier="cloud"} 0.004
# TYPE tierwise_router_request_duration_seconds histogram
tierwise_router_request_duration_seconds_bucket{workload="digits",le="0.1"} 90
tierwise_router_request_duration_seconds_bucket{workload="digits",le="0.5"} 100
tierwise_router_request_duration_seconds_bucket{workload="digits",le="+Inf"} 100
tierwise_router_request_duration_seconds_count{workload="digits"} 100
tierwise_router_request_duration_seconds_sum{workload="digits"} 4.2
# TYPE tierwise_power_watts gauge
tierwise_power_watts{tier="edge",source="estimated"} 4
tierwise_power_watts{tier="edge",source="measured"} 1.5
"""


def _samples() -> list[Sample]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(SCRAPE)
        for s in family.samples
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "5m"), (3600, "1h"), (30, "30s"), (1.5, "1500ms"), (90, "90s"), (0, "0s")],
)
def test_durations_print_as_prometheus_reads_them(seconds: float, text: str) -> None:
    assert prom_duration(seconds) == text


def test_counter_prints_a_rate_and_evaluates_to_totals() -> None:
    expr = Counter("tierwise_router_requests_total", ("workload",), (Match("tier", "edge"),))
    assert expr.promql("5m") == (
        'sum by (workload) (rate(tierwise_router_requests_total{tier="edge"}[5m]))'
    )
    assert expr.evaluate(_samples()) == {("digits",): 80.0}
    pinned = Counter("x_total", ("a",), window_s=3600)
    assert pinned.promql("$__rate_interval") == "sum by (a) (rate(x_total[1h]))"


def test_match_escapes_quotes_and_backslashes() -> None:
    assert Match("w", 'a"b\\c').promql() == 'w="a\\"b\\\\c"'
    assert Match("w", "dig.*", "=~").accepts({"w": "digits"})
    assert not Match("w", "dig", "=~").accepts({"w": "digits"})  # anchored, as in PromQL


def test_fallback_share_joins_on_the_workload() -> None:
    text = q.FALLBACK_RATE.promql("5m")
    assert " / on (workload) group_left () clamp_min(" in text
    assert q.FALLBACK_RATE.evaluate(_samples()) == {("digits", "cloud"): pytest.approx(0.1)}


def test_cost_per_million_leaves_out_workloads_without_traffic() -> None:
    found = q.COST_PER_MILLION.evaluate(_samples())
    assert found == {("digits",): pytest.approx(40.0)}  # 0.004 USD / 100 requests * 1e6
    assert q.COST_PER_MILLION.promql("1m").startswith("1000000 * (")
    assert "> 0)" in q.COST_PER_MILLION.promql("1m")


def test_quantile_interpolates_as_prometheus_does() -> None:
    assert histogram_quantile(0.25, [(0.1, 10), (0.5, 20), (math.inf, 20)]) == pytest.approx(0.05)
    assert histogram_quantile(0.99, [(0.1, 10), (0.5, 20), (math.inf, 20)]) == pytest.approx(
        0.1 + 0.4 * 9.8 / 10
    )
    # past the highest finite bound: that bound
    assert histogram_quantile(0.99, [(0.1, 10), (math.inf, 20)]) == 0.1
    assert math.isnan(histogram_quantile(0.99, [(0.1, 0), (math.inf, 0)]))
    p99 = q.workload_p99("digits")
    assert p99.evaluate(_samples()) == {("digits",): pytest.approx(0.1 + 0.4 * 9 / 10)}
    assert p99.promql("5m") == (
        "histogram_quantile(0.99, sum by (workload, le) "
        '(rate(tierwise_router_request_duration_seconds_bucket{workload="digits"}[5m])))'
    )


def test_gauges_combine_by_their_rule() -> None:
    assert q.POWER.evaluate(_samples()) == {("edge", "estimated"): 4.0, ("edge", "measured"): 1.5}
    summed = Gauge("tierwise_power_watts", ("tier",), how="sum")
    assert summed.evaluate(_samples()) == {("edge",): 5.5}
    assert Gauge("tierwise_power_watts", ("tier",)).evaluate(_samples()) == {("edge",): 4.0}


def test_a_dashboard_variable_narrows_only_the_named_series() -> None:
    var = Match("workload", "$workload", "=~")
    narrowed = with_match(q.ENERGY_PER_INFERENCE, var, {q.ROUTER_REQUESTS})
    assert "$workload" not in narrowed.promql("5m")  # tier-server series have no workload
    narrowed = with_match(q.COST_PER_MILLION, var, {q.ROUTER_REQUESTS})
    assert narrowed.promql("5m").count('workload=~"$workload"') == 1
    assert isinstance(narrowed, Scaled)


def test_a_ratio_needs_its_denominators_labels_in_the_numerator() -> None:
    with pytest.raises(ValueError, match="denominator labels"):
        Ratio(Counter("a_total", ("tier",)), Counter("b_total", ("workload",)))
    assert Quantile(0.5, "h", ("w",)).metrics() == {"h_bucket"}
