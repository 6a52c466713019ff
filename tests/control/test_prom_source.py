"""Gates read from a real Prometheus: ``/usr/bin/prometheus`` scrapes two loopback
endpoints every second, each serving exposition text whose counters the test advances
once; the cohort statistics must match the known increases."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from prometheus_helpers import running_prometheus, static_config
from server_helpers import free_port
from tierwise.control.cohort import CohortStats
from tierwise.control.prom_source import PrometheusSource, cohort_queries, regex_alternation
from tierwise.errors import ConfigError, TierError, TierUnavailableError

EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"
MODEL = 'model="digits",version="1"'
ROUTE = 'workload="w",tier="edge"'


class Node:
    """A node's ``/metrics``: tier server and router series from fixed counters."""

    def __init__(self, **counters: float) -> None:
        self.counters = dict.fromkeys(
            ("served", "failed", "other_model", "le_10ms", "le_100ms", "total", "joules",
             "agree", "disagree", "check_errors", "routed", "fallbacks"), 1000.0,
        )  # fmt: skip
        self.counters.update(counters)
        self.lock = threading.Lock()

    def advance(self, **by: float) -> None:
        with self.lock:
            for name, value in by.items():
                self.counters[name] += value

    def text(self) -> str:
        with self.lock:
            c = dict(self.counters)
        return "\n".join([
            "# TYPE tierwise_requests_total counter",
            f'tierwise_requests_total{{{MODEL},outcome="success"}} {c["served"]}',
            f'tierwise_requests_total{{{MODEL},outcome="error"}} {c["failed"]}',
            f'tierwise_requests_total{{model="other",version="1",outcome="success"}} '
            f'{c["other_model"]}',
            "# TYPE tierwise_request_duration_seconds histogram",
            f'tierwise_request_duration_seconds_bucket{{{MODEL},le="0.01"}} {c["le_10ms"]}',
            f'tierwise_request_duration_seconds_bucket{{{MODEL},le="0.1"}} {c["le_100ms"]}',
            f'tierwise_request_duration_seconds_bucket{{{MODEL},le="+Inf"}} {c["total"]}',
            f"tierwise_request_duration_seconds_sum{{{MODEL}}} 1.0",
            f'tierwise_request_duration_seconds_count{{{MODEL}}} {c["total"]}',
            "# TYPE tierwise_energy_joules_total counter",
            f'tierwise_energy_joules_total{{model="digits",tier="edge",source="estimated"}} '
            f'{c["joules"]}',
            "# TYPE tierwise_shadow_checks_total counter",
            *(f'tierwise_shadow_checks_total{{{ROUTE},reference="cloud",result="{r}"}} {c[k]}'
              for r, k in (("agree", "agree"), ("disagree", "disagree"),
                           ("error", "check_errors"))),
            "# TYPE tierwise_router_requests_total counter",
            f'tierwise_router_requests_total{{{ROUTE},outcome="answered"}} {c["routed"]}',
            "# TYPE tierwise_router_fallbacks_total counter",
            f'tierwise_router_fallbacks_total{{{ROUTE},cause="error"}} {c["fallbacks"]}',
            "",
        ])  # fmt: skip


@contextmanager
def serving(node: Node) -> Iterator[str]:
    """``node``'s ``/metrics`` on a loopback port; its ``host:port``. Any other path answers
    400 with a Prometheus-style error (``/api/...``) or 200 with plain text."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind, status = node.text().encode(), EXPOSITION, 200
            elif self.path.startswith("/api/"):
                body, kind, status = (
                    b'{"status":"error","error":"no such thing"}',
                    "application/json",
                    400,
                )
            else:
                body, kind, status = b"<html>hello</html>", "text/html", 200
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def prometheus(targets: list[str], folder: Path) -> Iterator[str]:
    """``/usr/bin/prometheus`` scraping ``targets`` every second; its URL."""
    with running_prometheus(static_config(targets), folder / "tsdb") as url:
        yield url


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.2)


def _samples(source: PrometheusSource, instance: str, promql: str) -> float:
    found = [v for labels, v in source.query(promql) if labels.get("instance") == instance]
    return found[0] if found else 0.0


#: what each node does between the two phases
CANARY_STEP = {
    "served": 200, "failed": 20, "other_model": 1000, "le_10ms": 100, "le_100ms": 220,
    "total": 220, "joules": 44, "agree": 45, "disagree": 5, "check_errors": 3, "routed": 250,
    "fallbacks": 25,
}  # fmt: skip
BASELINE_STEP = {
    "served": 400, "failed": 4, "le_10ms": 396, "le_100ms": 404, "total": 404, "joules": 40,
    "agree": 30, "routed": 100, "fallbacks": 1,
}  # fmt: skip


@pytest.mark.slow
def test_cohort_statistics_match_the_known_increases(tmp_path: Path) -> None:
    canary_node, baseline_node = Node(), Node(served=5000.0)
    with serving(canary_node) as canary, serving(baseline_node) as baseline, prometheus(
        [canary, baseline], tmp_path
    ) as url, PrometheusSource(url) as source:  # fmt: skip
        for instance in (canary, baseline):  # a few samples before anything happens
            wait_for(f"{instance} scraped 4 times", lambda i=instance: _samples(
                source, i, "count_over_time(up[1m])") >= 4, 20)  # fmt: skip
        jumped_s = time.time()
        canary_node.advance(**CANARY_STEP)
        baseline_node.advance(**BASELINE_STEP)
        for instance in (canary, baseline):
            wait_for(f"{instance} scraped after the step", lambda i=instance: _samples(
                source, i, "tierwise_router_requests_total") > 1000, 10)  # fmt: skip
        time.sleep(3.0)
        at_s = time.time()
        window_s = at_s - jumped_s + 3.5  # three samples before the step, four after

        mine = source.cohort_stats([canary], ["digits"], window_s, at_s=at_s)
        theirs = source.cohort_stats([baseline], ["digits"], window_s, at_s=at_s)
        few_checks = source.cohort_stats(
            [baseline], ["digits"], window_s, at_s=at_s, min_checks=100
        )
        both = source.cohort_stats([canary, baseline], ["digits", "other"], window_s, at_s=at_s)
        nobody = source.cohort_stats(["127.0.0.1:1"], ["digits"], window_s, at_s=at_s)
        with pytest.raises(TierError) as caught:
            source.query("sum(")

    # increase() extrapolates to the window's edges: counts come out a little high
    assert mine.nodes == 1
    assert 220 <= mine.requests <= 220 * 1.4
    assert mine.errors == pytest.approx(mine.requests * 20 / 220, abs=1)
    # ratios of series scraped together are exact
    assert mine.error_rate == pytest.approx(20 / 220)
    assert mine.p99_s == pytest.approx(0.01 + 0.09 * (0.99 * 220 - 100) / 120)
    assert mine.energy_j_per_inference == pytest.approx(44 / 200)
    assert mine.agreement == pytest.approx(45 / 50)  # the 3 errors are not checks
    assert 50 <= mine.checks <= 50 * 1.4
    assert mine.fallback_rate == pytest.approx(25 / 250)

    assert theirs.error_rate == pytest.approx(4 / 404)
    assert theirs.p99_s == pytest.approx(0.01 + 0.09 * (0.99 * 404 - 396) / 8)
    assert theirs.energy_j_per_inference == pytest.approx(40 / 400)
    assert theirs.agreement == pytest.approx(1.0)
    assert few_checks.agreement is None  # about 30 checks, fewer than 100
    assert few_checks.p99_s == theirs.p99_s
    assert theirs.fallback_rate == pytest.approx(1 / 100)

    assert both.nodes == 2
    assert 220 + 404 + 1000 <= both.requests <= (220 + 404 + 1000) * 1.4  # "other" counts now
    assert both.error_rate is not None
    assert 24 / 1624 * 0.8 < both.error_rate < 24 / 1624 * 1.2

    assert nobody == CohortStats(0, 0, 0, None, None, None, None, None)
    message = str(caught.value)
    assert url in message
    assert "sum(" in message
    assert "parse error" in message


def test_a_prometheus_that_cannot_be_reached_names_its_url_and_the_query() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        PrometheusSource(url, timeout_s=2) as source,
        pytest.raises(TierUnavailableError) as caught,
    ):
        source.cohort_stats(["10.0.0.5:8000"], ["digits"], 30)
    message = str(caught.value)
    assert f"Prometheus at {url} does not answer" in message
    assert 'tierwise_requests_total{instance=~"10\\\\.0\\\\.0\\\\.5:8000"' in message


def test_answers_that_are_not_prometheus_are_clear_errors() -> None:
    with serving(Node()) as address:
        with PrometheusSource(f"http://{address}") as source, pytest.raises(TierError) as caught:
            source.query("up")
        assert str(caught.value) == (
            f"tier 'prometheus': Prometheus at http://{address} answered HTTP 400: no such thing "
            "to the query up"
        )
        with (
            PrometheusSource(f"http://{address}/page") as source,
            pytest.raises(TierError) as caught,
        ):
            source.query("up", at_s=1.5)
        assert "answered HTTP 200 without JSON: '<html>hello</html>' to the query up" in str(
            caught.value
        )


def test_instances_are_escaped_so_that_only_they_match() -> None:
    pattern = regex_alternation(["10.0.0.5:8000", "[::1]:9100", "10.0.0.5:8000", "a+b"])
    assert pattern == r"10\.0\.0\.5:8000|\[::1\]:9100|a\+b"
    for text, matched in [("10.0.0.5:8000", True), ("10a0b0c5:8000", False), ("[::1]:9100", True),
                          ("a+b", True), ("aab", False), ("10.0.0.5:80001", False)]:  # fmt: skip
        assert (re.fullmatch(pattern, text) is not None) == matched, text


def test_the_queries_read_the_cohorts_series_over_the_window() -> None:
    queries = cohort_queries(["10.0.0.5:8000"], ["digits", "m.v2"], 90)
    nodes = 'instance=~"10\\\\.0\\\\.0\\\\.5:8000"'
    served = f'{nodes}, model=~"digits|m\\\\.v2"'
    assert queries == {
        "requests": "sum by (instance, outcome) "
                    f"(increase(tierwise_requests_total{{{served}}}[90s]))",
        "p99": "histogram_quantile(0.99, sum by (le) (increase("
               f"tierwise_request_duration_seconds_bucket{{{served}}}[90s])))",
        "energy": f"sum (increase(tierwise_energy_joules_total{{{served}}}[90s]))",
        "checks": f"sum by (result) (increase(tierwise_shadow_checks_total{{{nodes}}}[90s]))",
        "routed": f"sum (increase(tierwise_router_requests_total{{{nodes}}}[90s]))",
        "fallbacks": f"sum (increase(tierwise_router_fallbacks_total{{{nodes}}}[90s]))",
    }  # fmt: skip
    assert cohort_queries(["a:1"], ["m"], 1.5)["routed"].endswith("[1500ms]))")


def test_bad_arguments_are_refused_before_any_query() -> None:
    with pytest.raises(ConfigError, match=r"^prometheus_url: "):
        PrometheusSource("localhost:9090")
    with pytest.raises(ConfigError, match=r"^instances: "):
        cohort_queries("10.0.0.5:8000", ["digits"], 30)
    with pytest.raises(ConfigError, match=r"^models: "):
        cohort_queries(["10.0.0.5:8000"], [], 30)
    with pytest.raises(ConfigError, match=r"^window_s: "):
        cohort_queries(["10.0.0.5:8000"], ["digits"], 0)
    with PrometheusSource("http://127.0.0.1:1") as source:
        with pytest.raises(ConfigError, match=r"^min_checks: "):
            source.cohort_stats(["a:1"], ["m"], 30, min_checks=0)
        empty = source.cohort_stats([], ["m"], 30)  # nothing to ask: no query is sent
    assert empty.requests == 0
