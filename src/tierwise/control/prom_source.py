"""A cohort's statistics read from a real Prometheus, for gates when one is configured.

The nodes of a cohort are named by the addresses Prometheus scrapes them at (its
``instance`` label): their tier servers and their router fronts. Every figure is an
instant query over the window (``increase(...[window])``) restricted to those instances
(``instance=~"a|b"``, each address escaped so that only itself matches) and, for tier
server series, to the bundle's models (``model=~"..."``):

- requests and errors: ``tierwise_requests_total`` by ``outcome`` (``success`` is
  served, any other outcome failed);
- p99: ``histogram_quantile(0.99, ...)`` over ``tierwise_request_duration_seconds``;
- joules per inference: ``tierwise_energy_joules_total`` over the requests served (the
  tier servers count requests, not rows, so this is joules per answered request);
- agreement: ``tierwise_shadow_checks_total`` with ``result`` ``agree`` or ``disagree``;
- fallback rate: ``tierwise_router_fallbacks_total`` over
  ``tierwise_router_requests_total``.

Prometheus extrapolates ``increase`` to the window's edges, so counts are estimates
(ratios of counters scraped together are not affected). A query without series gives
None (or 0 requests). A Prometheus that cannot be reached, or that answers with an error,
raises a TierError naming its URL and the query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from tierwise.control.cohort import CohortStats
from tierwise.errors import ConfigError, TierError, TierUnavailableError
from tierwise.http import HttpClient
from tierwise.observe.promql import Match, prom_duration

__all__ = ["PrometheusSource", "cohort_queries", "regex_alternation"]

#: Largest answer read from Prometheus' API.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")

REQUESTS = "tierwise_requests_total"
DURATION = "tierwise_request_duration_seconds"
ENERGY = "tierwise_energy_joules_total"
CHECKS = "tierwise_shadow_checks_total"
ROUTED = "tierwise_router_requests_total"
FALLBACKS = "tierwise_router_fallbacks_total"


def regex_alternation(values: Sequence[str]) -> str:
    """A regular expression (RE2, which Prometheus anchors) matching exactly ``values``."""
    escaped = ("".join("\\" + c if c in _RE2_SPECIAL else c for c in v) for v in values)
    return "|".join(sorted(set(escaped)))


def _increase(metric: str, match: tuple[Match, ...], window: str, by: tuple[str, ...]) -> str:
    selector = metric + "{" + ", ".join(m.promql() for m in match) + "}"
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (increase({selector}[{window}]))"


def cohort_queries(
    instances: Sequence[str], models: Sequence[str], window_s: float
) -> dict[str, str]:
    """The PromQL of each figure: ``requests``, ``p99``, ``energy``, ``checks``,
    ``routed`` and ``fallbacks``."""
    if (
        isinstance(instances, str)
        or not instances
        or not all(isinstance(i, str) for i in instances)
    ):
        raise ConfigError("instances", "a non-empty list of scraped addresses", instances)
    if isinstance(models, str) or not models or not all(isinstance(m, str) for m in models):
        raise ConfigError("models", "a non-empty list of model names", models)
    if isinstance(window_s, bool) or not isinstance(window_s, int | float) or not (
        math.isfinite(window_s) and window_s >= 0.001):  # fmt: skip
        raise ConfigError("window_s", "a window of at least 1 ms", window_s)
    window = prom_duration(window_s)
    nodes = (Match("instance", regex_alternation(instances), "=~"),)
    served = (*nodes, Match("model", regex_alternation(models), "=~"))
    buckets = _increase(f"{DURATION}_bucket", served, window, ("le",))
    return {
        "requests": _increase(REQUESTS, served, window, ("instance", "outcome")),
        "p99": f"histogram_quantile(0.99, {buckets})",
        "energy": _increase(ENERGY, served, window, ()),
        "checks": _increase(CHECKS, nodes, window, ("result",)),
        "routed": _increase(ROUTED, nodes, window, ()),
        "fallbacks": _increase(FALLBACKS, nodes, window, ()),
    }


class PrometheusSource:
    """Prometheus' HTTP API at ``url``; each call waits at most ``timeout_s``."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("prometheus_url", "an http:// or https:// URL", url)
        self.url = url.rstrip("/")
        self._client = HttpClient(
            self.url, timeout_s=timeout_s, name="prometheus", max_response_bytes=MAX_ANSWER_BYTES
        )

    def close(self) -> None:
        """Close the connections to Prometheus."""
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def query(
        self, promql: str, *, at_s: float | None = None
    ) -> list[tuple[dict[str, str], float]]:
        """An instant query's vector (at ``at_s``, else now): ``(labels, value)`` per series."""
        params = {"query": promql} | ({} if at_s is None else {"time": f"{at_s:.3f}"})
        try:
            response = self._client.request_sync("GET", "/api/v1/query?" + urlencode(params))
        except TierUnavailableError as exc:  # timeouts included
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            reason = f"Prometheus at {self.url} does not answer ({type(cause).__name__}: {cause})"
            raise TierUnavailableError(
                f"{reason} to the query {promql}", tier="prometheus"
            ) from exc

        def refused(why: str) -> TierError:
            return TierError(
                f"Prometheus at {self.url} answered {why} to the query {promql}", tier="prometheus"
            )

        try:
            body: Any = response.json()
        except ValueError:
            raise refused(
                f"HTTP {response.status_code} without JSON: {response.text[:200]!r}"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success" or not response.is_success:
            error = body.get("error") if isinstance(body, dict) else None
            detail = str(error) if error else repr(response.text[:200])
            raise refused(f"HTTP {response.status_code}: {detail}")
        data = body.get("data")
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            raise refused("something other than a vector")
        try:
            return [(dict(row["metric"]), float(row["value"][1])) for row in data["result"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise refused("a malformed vector") from None

    def cohort_stats(
        self,
        instances: Sequence[str],
        models: Sequence[str],
        window_s: float,
        *,
        at_s: float | None = None,
        min_checks: int = 20,
    ) -> CohortStats:
        """The statistics of the nodes scraped at ``instances`` serving ``models`` over
        the ``window_s`` seconds up to ``at_s`` (now by default)."""
        if isinstance(min_checks, bool) or not isinstance(min_checks, int) or min_checks < 1:
            raise ConfigError("min_checks", "a whole number >= 1", min_checks)
        if not instances or not models:
            return CohortStats(0, 0, 0, None, None, None, None, None)
        queries = cohort_queries(instances, models, window_s)

        def total(name: str) -> float:
            return sum(_finite(v) for _, v in self.query(queries[name], at_s=at_s))

        nodes: set[str] = set()
        requests = served = 0.0
        for labels, value in self.query(queries["requests"], at_s=at_s):
            nodes.add(labels.get("instance", ""))
            requests += _finite(value)
            served += _finite(value) if labels.get("outcome") == "success" else 0.0
        p99 = None
        if requests > 0:
            found = [v for _, v in self.query(queries["p99"], at_s=at_s) if math.isfinite(v)]
            p99 = found[0] if found else None
        energy = total("energy")
        checks = dict.fromkeys(("agree", "disagree"), 0.0)
        for labels, value in self.query(queries["checks"], at_s=at_s):
            if labels.get("result") in checks:
                checks[labels["result"]] += _finite(value)
        compared = checks["agree"] + checks["disagree"]
        routed, fallbacks = total("routed"), total("fallbacks")
        return CohortStats(
            nodes=len(nodes),
            requests=round(requests),
            errors=round(requests - served),
            p99_s=p99,
            error_rate=(requests - served) / requests if requests > 0 else None,
            agreement=checks["agree"] / compared if compared >= min_checks else None,
            energy_j_per_inference=energy / served if served > 0 and energy > 0 else None,
            fallback_rate=fallbacks / routed if routed > 0 else None,
            checks=round(compared),
        )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
