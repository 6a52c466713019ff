"""The router's Prometheus metrics: what each request amounted to, kept as plain counters
on the event loop's thread and turned into families only when ``/metrics`` is scraped.

:meth:`RouterMetrics.observe` takes a finished :class:`~tierwise.router.answer.RoutedAnswer`
and its route in one call (a few dict additions); :meth:`RouterMetrics.failed` takes a
request no tier answered. :class:`RouterCollector` exports them with what it reads of the
router at scrape time (breakers, thermal flags, degraded answers, re-evaluations):

- ``tierwise_router_requests_total{workload,tier,outcome}``: outcome ``answered``,
  ``degraded``, ``deferred``, ``no_route`` or ``deadline`` (tier ``-`` when none answered);
- ``tierwise_router_request_duration_seconds{workload}``: answered and failed requests
  (not deferred ones; one refused for its deadline before routing counts from its
  arrival, or not at all when that is unknown); the buckets include the workload's SLO
  bound;
- ``tierwise_workload_slo_seconds{workload}``: the workload's p99 target, when it has one;
- ``tierwise_router_escalations_total{workload,stage,rule}``: answers a stage's rule did
  not accept, by the tier escalated from and the rule's name;
- ``tierwise_router_fallbacks_total{workload,tier,cause}``: each cascade stage the request
  reached that was skipped or failed (tier: that stage's), for any cause but privacy and
  residency (a stage the request's data may not reach was never going to be asked);
- ``tierwise_router_degraded_total{workload,tier,cause}``: degraded answers by the tier
  that gave them (the router's ``fallbacks`` counts);
- ``tierwise_router_hedges_total{workload,tier}``: backup tiers asked by hedging;
- ``tierwise_router_cost_usd_total{workload,tier}``: what the tiers asked charged, at the
  plan's prices;
- ``tierwise_router_breaker_open{tier}`` and ``tierwise_router_thermal_offload{tier}``:
  0 or 1, now.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tierwise.router.answer import AttemptRecord, RoutedAnswer
from tierwise.router.types import DEGRADING_CAUSES, Route
from tierwise.telemetry.families import LATENCY_BUCKETS_S, Buckets, Tally

if TYPE_CHECKING:
    from tierwise.router.router import Router

__all__ = ["NO_TIER", "RouterCollector", "RouterMetrics", "duration_buckets", "rule_name"]

#: The ``tier`` label of a request no tier answered.
NO_TIER = "-"


def duration_buckets(slo_s: float | None) -> tuple[float, ...]:
    """The latency buckets (seconds) of a workload: the usual ones plus its SLO bound."""
    if slo_s is None:
        return LATENCY_BUCKETS_S
    return tuple(sorted({*LATENCY_BUCKETS_S, float(slo_s)}))


def rule_name(rule: object | None) -> str | None:
    """How metrics name a stage's escalation rule: its registry name (``max_prob``, as
    the plan says it), else its class name; None for a stage without one."""
    if rule is None:
        return None
    name = getattr(rule, "name", None)
    return name if isinstance(name, str) else type(rule).__name__


def _add(counts: dict[tuple[str, ...], Tally], key: tuple[str, ...], amount: float = 1.0) -> None:
    _tally(counts, key).value += amount


def _tally(counts: dict[tuple[str, ...], Tally], key: tuple[str, ...]) -> Tally:
    tally = counts.get(key)
    if tally is None:
        tally = counts[key] = Tally()
    return tally


class _Series:
    """The counters of one workload."""

    __slots__ = (
        "cost",
        "duration_s",
        "escalations",
        "fallbacks",
        "hedges",
        "position",
        "requests",
        "rules",
    )

    def __init__(self, stages: Sequence[tuple[str, str | None]], slo_s: float | None) -> None:
        self.position = {tier: i for i, (tier, _) in enumerate(stages)}
        self.rules = {tier: rule or NO_TIER for tier, rule in stages}
        self.requests: dict[tuple[str, ...], Tally] = {}
        self.duration_s = Buckets(duration_buckets(slo_s))
        self.cost: dict[tuple[str, ...], Tally] = {}
        self.escalations: dict[tuple[str, ...], Tally] = {}
        self.fallbacks: dict[tuple[str, ...], Tally] = {}
        self.hedges: dict[tuple[str, ...], Tally] = {}


class _First:
    """The series a first-stage answer adds to, looked up once per workload and tier; its
    cost series is made at the first cost, as :func:`_add` makes it."""

    __slots__ = ("cost", "costs", "duration", "requests", "tier")

    def __init__(self, series: _Series, tier: str) -> None:
        self.tier = tier
        self.requests = _tally(series.requests, (tier, "answered"))
        self.duration = series.duration_s
        self.costs = series.cost
        self.cost: Tally | None = None

    def cost_tally(self) -> Tally:
        self.cost = _tally(self.costs, (self.tier,))
        return self.cost


class RouterMetrics:
    """The per-request counters of one router. ``cascades`` holds each workload's stages
    as ``(tier, rule name or None)``, cheapest first; ``slo_s`` each workload's p99 target
    in seconds (workloads without one get the usual latency buckets)."""

    def __init__(
        self,
        cascades: Mapping[str, Sequence[tuple[str, str | None]]],
        slo_s: Mapping[str, float] | None = None,
    ) -> None:
        self.slo_s = {w: float(s) for w, s in (slo_s or {}).items() if w in cascades}
        self.workloads = {w: _Series(c, self.slo_s.get(w)) for w, c in cascades.items()}
        #: each workload's first stage, and its series once it answered (the shortcut in
        #: :meth:`observe`; made at the first answer, as :func:`_add` makes series)
        self._first_tier = {w: c[0][0] for w, c in cascades.items() if c}
        self._first: dict[tuple[str, str], _First] = {}

    def _series(self, workload: str) -> _Series:
        series = self.workloads.get(workload)
        if series is None:  # a workload the policy knows but the stages did not list
            series = self.workloads[workload] = _Series((), None)
        return series

    def observe(self, answer: RoutedAnswer, route: Route) -> None:
        """Count one routed request (answered, degraded or deferred)."""
        workload, _, attempts, _, total_ms = answer._detail
        if len(attempts) == 1 and answer.degraded_reason is None:
            # the common case on a device: the first stage answered and its rule accepted
            # it; no escalation, no fallback, no stage before it that was skipped
            tier, outcome, _, _, cost_usd, _, cause = attempts[0]
            first = self._first.get((workload, tier))
            if first is None and self._first_tier.get(workload) == tier:
                first = self._first[(workload, tier)] = _First(self.workloads[workload], tier)
            if first is not None and outcome == "answered" and cause is None:
                first.requests.value += 1.0
                if cost_usd:
                    (first.cost or first.cost_tally()).value += cost_usd
                first.duration.observe(total_ms / 1000.0)
                return
        series = self.workloads.get(workload) or self._series(workload)
        if answer.deferred_id is not None:  # the tiers it tried before (no route) count
            _add(series.requests, (NO_TIER, "deferred"))
            self._attempts(series, attempts, route, NO_TIER, False)
            return
        tier = answer.answered_by or NO_TIER
        degraded = answer.degraded_reason is not None
        _add(series.requests, (tier, "degraded" if degraded else "answered"))
        series.duration_s.observe(total_ms / 1000.0)
        self._attempts(series, attempts, route, tier, degraded)

    def failed(
        self,
        workload: str,
        outcome: Literal["no_route", "deadline"],
        attempts: Sequence[AttemptRecord],
        route: Route | None,
        elapsed_s: float | None,
    ) -> None:
        """Count a request no tier answered: ``no_route`` or ``deadline``; its time since
        arrival joins the duration histogram when known (``elapsed_s`` not None)."""
        series = self._series(workload)
        _add(series.requests, (NO_TIER, outcome))
        if elapsed_s is not None:
            series.duration_s.observe(elapsed_s)
        self._attempts(series, attempts, route, NO_TIER, False)

    def hedged(self, workload: str, tier: str) -> None:
        """Count a backup tier asked because the first was slow."""
        _add(self._series(workload).hedges, (tier,))

    def _attempts(
        self,
        series: _Series,
        attempts: Sequence[AttemptRecord],
        route: Route | None,
        answered_by: str,
        degraded: bool,
    ) -> None:
        for tier, outcome, _, _, cost_usd, _, cause in attempts:
            if cost_usd:
                _add(series.cost, (tier,), cost_usd)
            if outcome == "escalated":
                _add(series.escalations, (tier, series.rules.get(tier, NO_TIER)))
            elif cause is not None:
                _add(series.fallbacks, (tier, cause))
        if route is not None and len(route.tiers) < len(route.decisions):
            self._skipped(series, attempts, route, answered_by, degraded)

    @staticmethod
    def _skipped(
        series: _Series,
        attempts: Sequence[AttemptRecord],
        route: Route,
        answered_by: str,
        degraded: bool,
    ) -> None:
        """The stages the policy left out that the request reached: those before the one
        that answered, and after it when the answer is degraded (not twice: a degraded
        answer's trace already names the first of them)."""
        position = series.position
        at = position.get(answered_by, len(position))
        tried = {record[0] for record in attempts}
        for decision in route.decisions:
            cause = decision.cause
            if decision.kept or cause not in DEGRADING_CAUSES or decision.tier in tried:
                continue
            where = position.get(decision.tier, len(position))
            if where < at or (degraded and where > at):
                _add(series.fallbacks, (decision.tier, str(cause)))


def _counter(
    name: str, doc: str, labels: list[str], rows: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in sorted(rows):
        family.add_metric(list(values), value)
    return family


class RouterCollector(Collector):
    """The router's families, built from its counters and state when scraped."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[Metric]:
        router = self._router
        metrics = router.metrics
        workloads = sorted(metrics.workloads.items())

        def rows(pick: str) -> Iterator[tuple[tuple[str, ...], float]]:
            for workload, series in workloads:
                for key, tally in getattr(series, pick).items():
                    yield (workload, *key), tally.value

        yield _counter(
            "tierwise_router_requests", "Routed requests by workload, answering tier, outcome.",
            ["workload", "tier", "outcome"], rows("requests"),
        )  # fmt: skip
        duration = HistogramMetricFamily(
            "tierwise_router_request_duration_seconds",
            "Time to route a request, all tiers asked included (deferred ones left out).",
            labels=["workload"],
        )
        for workload, series in workloads:
            duration.add_metric([workload], series.duration_s.cumulative(), series.duration_s.total)
        yield duration
        slo = GaugeMetricFamily(
            "tierwise_workload_slo_seconds", "The workload's p99 latency target.",
            labels=["workload"],
        )  # fmt: skip
        for workload, slo_s in sorted(metrics.slo_s.items()):
            slo.add_metric([workload], slo_s)
        yield slo
        yield _counter(
            "tierwise_router_escalations",
            "Answers a stage's rule did not accept, by the tier escalated from and the rule.",
            ["workload", "stage", "rule"], rows("escalations"),
        )  # fmt: skip
        yield _counter(
            "tierwise_router_fallbacks",
            "Cascade stages a request reached that were skipped or failed, by cause.",
            ["workload", "tier", "cause"], rows("fallbacks"),
        )  # fmt: skip
        yield _counter(
            "tierwise_router_degraded",
            "Degraded answers: a stage the cascade would have asked was skipped or failed"
            " and the answering stage's rule did not accept the answer.",
            ["workload", "tier", "cause"], router.fallbacks.items(),
        )  # fmt: skip
        yield _counter(
            "tierwise_router_hedges", "Backup tiers asked because the first was slow.",
            ["workload", "tier"], rows("hedges"),
        )  # fmt: skip
        yield _counter(
            "tierwise_router_cost_usd", "What the tiers asked charged, at the plan's prices.",
            ["workload", "tier"], rows("cost"),
        )  # fmt: skip
        breaker = GaugeMetricFamily(
            "tierwise_router_breaker_open", "1 while a tier's circuit breaker refuses calls.",
            labels=["tier"],
        )  # fmt: skip
        for tier, state in sorted(router.breakers.items()):
            breaker.add_metric([tier], 1.0 if state.is_open else 0.0)
        yield breaker
        thermal = GaugeMetricFamily(
            "tierwise_router_thermal_offload", "1 while a tier offloads work for heat.",
            labels=["tier"],
        )  # fmt: skip
        for tier in sorted(router.tiers):
            thermal.add_metric([tier], 1.0 if router.thermal_offload.flag(tier) else 0.0)
        yield thermal
        if router.shadow is not None:
            yield from router.shadow.families()
