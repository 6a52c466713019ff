"""``tierwise observe status``: the fleet's state now, read from Prometheus' HTTP API or
straight from the targets' ``/metrics``.

From Prometheus (:class:`PrometheusSource`) every figure is the query of
:mod:`tierwise.observe.queries` over the rate window, the targets are its ``up`` series
and the alerts its ``/api/v1/alerts``. From the targets (:class:`SnapshotSource`) each is
scraped twice, ``sample_s`` apart: requests per second come from the difference, the
other figures (p99, shares, cost per 1M, energy per inference) from the totals since each
process started, and there are no alerts (only Prometheus evaluates them). A target that
does not answer is shown as down, never an error.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

from tierwise.errors import ConfigError, TierError, TierUnavailableError, TierwiseError
from tierwise.http import HttpClient
from tierwise.observe import queries as q
from tierwise.observe.promql import Counter, Expr, Key, Ratio, Sample, prom_duration
from tierwise.observe.scrape import Target
from tierwise.observe.slo import WorkloadSlo
from tierwise.security.tls import client_context

__all__ = [
    "FleetStatus",
    "PrometheusSource",
    "SnapshotSource",
    "Source",
    "TargetState",
    "gather_status",
]

#: Largest /metrics body read from one target, and largest Prometheus API answer.
MAX_METRICS_BYTES = 16 * 1024 * 1024
MAX_API_BYTES = 64 * 1024 * 1024

_WORKLOAD_RPS = Counter(q.ROUTER_REQUESTS, ("workload",))
_FALLBACK_SHARE = Ratio(Counter(q.FALLBACKS, ("workload",)), _WORKLOAD_RPS)
_TIER_RPS = Counter(q.TIER_REQUESTS, ("tier",), q.SERVED_BY_TIER.match)


@dataclass(frozen=True)
class TargetState:
    """One scrape target: up or down (and why)."""

    job: str
    instance: str
    tier: str | None
    up: bool
    error: str | None = None


class Source(ABC):
    """Where the figures come from."""

    kind: str
    where: str

    @abstractmethod
    def answer(self, expr: Expr) -> dict[Key, float]:
        """The expression's value by its ``by`` labels."""

    @abstractmethod
    def rate(self, counter: Counter) -> dict[Key, float]:
        """A counter's increase per second."""

    @abstractmethod
    def targets(self) -> list[TargetState]:
        """The targets and whether they answer."""

    def alerts(self) -> list[dict[str, Any]] | None:
        """Alerts pending or firing (None: this source cannot know)."""
        return None


class PrometheusSource(Source):
    """A Prometheus server's HTTP API at ``url``; rates over ``window_s``. An unreachable
    Prometheus is a TierwiseError (there is nothing to show)."""

    kind = "prometheus"

    def __init__(self, url: str, *, window_s: float = 300.0, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("--prometheus", "an http:// or https:// URL", url)
        self.where = url.rstrip("/")
        self.window = prom_duration(window_s)
        self._client = HttpClient(
            self.where, timeout_s=timeout_s, name="prometheus", max_response_bytes=MAX_API_BYTES
        )

    def close(self) -> None:
        """Close the connections to Prometheus."""
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _get(self, path: str) -> Any:
        try:
            response = self._client.request_sync("GET", path)
        except TierUnavailableError as exc:  # timeouts included
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            reason = f"Prometheus at {self.where} does not answer ({type(cause).__name__})"
            raise TierUnavailableError(reason, tier="prometheus") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise ConfigError("--prometheus", "Prometheus' HTTP API", response.text[:200]) from exc
        where = f"an answer to {path.split('?')[0]}"
        if not isinstance(body, dict):
            raise ConfigError("--prometheus", where, response.text[:200])
        if not response.is_success or body.get("status") != "success":
            raise ConfigError("--prometheus", where, body.get("error", response.text[:200]))
        data = body.get("data")
        if not isinstance(data, dict):
            raise ConfigError("--prometheus", f"{where} with a data object", response.text[:200])
        return data

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant query's vector: ``(labels, value)`` per series."""
        data = self._get("/api/v1/query?" + urlencode({"query": promql}))
        if data.get("resultType") != "vector":
            return []
        return [(row["metric"], float(row["value"][1])) for row in data["result"]]

    def answer(self, expr: Expr) -> dict[Key, float]:
        rows = self.query(expr.promql(self.window))
        return {tuple(labels.get(b, "") for b in expr.by): value for labels, value in rows}

    def rate(self, counter: Counter) -> dict[Key, float]:
        return self.answer(counter)

    def targets(self) -> list[TargetState]:
        return [
            TargetState(labels.get("job", ""), labels.get("instance", ""), labels.get("tier"),
                        value == 1.0, None if value == 1.0 else "scrape failed")
            for labels, value in self.query("up")
        ]  # fmt: skip

    def alerts(self) -> list[dict[str, Any]]:
        out = []
        for alert in self._get("/api/v1/alerts").get("alerts", []):
            labels = dict(alert.get("labels", {}))
            out.append({
                "alert": labels.pop("alertname", ""), "state": alert.get("state", ""),
                "labels": labels, "value": alert.get("value"),
                "summary": alert.get("annotations", {}).get("summary", ""),
                "active_at": alert.get("activeAt"),
            })  # fmt: skip
        return out


def _scrape(client: HttpClient, target: Target) -> list[Sample]:
    url = f"{target.scheme}://{target.address}{target.metrics_path}"
    response = client.request_sync("GET", url)
    if not response.is_success:
        raise ConfigError(url, "200 from /metrics", response.status_code)
    samples: list[Sample] = []
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            labels = dict(s.labels)
            if target.tier is not None:  # as Prometheus does: the target's tier wins
                if "tier" in labels and labels["tier"] != target.tier:
                    labels["exported_tier"] = labels["tier"]
                labels["tier"] = target.tier
            labels.setdefault("instance", target.address)
            labels.setdefault("job", target.job)
            samples.append((s.name, labels, float(s.value)))
    return samples


class SnapshotSource(Source):
    """The targets' ``/metrics``, scraped twice ``sample_s`` apart."""

    kind = "targets"

    def __init__(
        self, targets: Sequence[Target], *, sample_s: float = 1.0, timeout_s: float = 5.0
    ) -> None:
        if sample_s < 0 or sample_s > 60:
            raise ConfigError("sample_s", "seconds in [0, 60]", sample_s)
        self.where = ", ".join(t.address for t in targets) or "no targets"
        self._states: list[TargetState] = []
        clients = [
            HttpClient(timeout_s=timeout_s, ssl_context=client_context(t.tls),
                       server_name=None if t.tls is None else t.tls.server_name,
                       max_response_bytes=MAX_METRICS_BYTES)
            for t in targets
        ]  # fmt: skip
        try:
            first, start = self._round(targets, clients), time.monotonic()
            if sample_s > 0:
                time.sleep(sample_s)
            self._last = self._round(targets, clients, record=True)
            self._dt = max(time.monotonic() - start, 1e-3)
        finally:
            for client in clients:
                client.close()
        self._first = first

    def _round(
        self, targets: Sequence[Target], clients: Sequence[HttpClient], *, record: bool = False
    ) -> list[Sample]:
        samples: list[Sample] = []
        for target, client in zip(targets, clients, strict=True):
            try:
                got, error = _scrape(client, target), None
            except TierError as exc:
                got, error = [], exc.reason
            except (TierwiseError, ValueError) as exc:
                got, error = [], str(exc)
            samples += got
            if record:
                self._states.append(
                    TargetState(target.job, target.address, target.tier, error is None, error)
                )
        return samples

    def answer(self, expr: Expr) -> dict[Key, float]:
        return expr.evaluate(self._last)

    def rate(self, counter: Counter) -> dict[Key, float]:
        before = counter.evaluate(self._first)
        return {
            k: max(v - before.get(k, 0.0), 0.0) / self._dt
            for k, v in counter.evaluate(self._last).items()
        }

    def targets(self) -> list[TargetState]:
        return list(self._states)


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def _one(found: Mapping[Key, float], key: str) -> float | None:
    return _num(found.get((key,)))


@dataclass
class FleetStatus:
    """What ``tierwise observe status`` shows (``to_json`` for ``--json``)."""

    source: str
    where: str
    workloads: list[dict[str, Any]] = field(default_factory=list)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    breakers: list[dict[str, Any]] = field(default_factory=list)
    targets: list[TargetState] = field(default_factory=list)
    alerts: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["targets"] = [asdict(t) for t in self.targets]
        return out


def gather_status(source: Source, slos: Mapping[str, WorkloadSlo] | None = None) -> FleetStatus:
    """The fleet's state from ``source``; the workloads are the plan's (``slos``) and any
    other the routers report."""
    status = FleetStatus(source.kind, source.where, targets=source.targets())
    slos = slos or {}
    rps = source.rate(_WORKLOAD_RPS)
    p99 = source.answer(q.workload_p99())
    exported_slo = source.answer(q.SLO_SECONDS)
    fallback = source.answer(_FALLBACK_SHARE)
    cost = source.answer(q.COST_PER_MILLION)
    names = list(slos) + sorted({k[0] for k in rps} - set(slos) - {""})
    for name in names:
        slo = slos.get(name)
        target = slo.p99_s if slo is not None and slo.p99_s is not None else None
        status.workloads.append({
            "workload": name, "rps": _one(rps, name), "p99_s": _one(p99, name),
            "slo_p99_s": target if target is not None else _one(exported_slo, name),
            "fallback_rate": _one(fallback, name), "usd_per_million": _one(cost, name),
        })  # fmt: skip
    tier_rps = source.rate(_TIER_RPS)
    energy = source.answer(q.ENERGY_PER_INFERENCE)
    power: dict[str, float] = {}
    for (tier, _), watts in source.answer(q.POWER).items():
        power[tier] = power.get(tier, 0.0) + watts
    drift: dict[str, float] = {}
    for (tier, *_), level in source.answer(q.DRIFT_LEVEL).items():
        drift[tier] = max(drift.get(tier, 0.0), level)
    tier_names = {k[0] for k in tier_rps} | {k[0] for k in energy} | set(power) | set(drift)
    tier_names |= {t.tier for t in status.targets if t.tier is not None}
    for tier in sorted(tier_names - {""}):
        status.tiers.append({
            "tier": tier, "rps": _one(tier_rps, tier),
            "joules_per_inference": _one(energy, tier), "power_watts": _num(power.get(tier)),
            "drift_level": _num(drift.get(tier)),
        })  # fmt: skip
    items, age = source.answer(q.OUTBOX_ITEMS), source.answer(q.OUTBOX_AGE)
    for (queue,) in sorted(set(items) | set(age)):
        status.outbox.append({"queue": queue, "items": _one(items, queue),
                              "oldest_age_s": _one(age, queue)})  # fmt: skip
    for (tier,), value in sorted(source.answer(q.BREAKER_OPEN).items()):
        status.breakers.append({"tier": tier, "open": value > 0})
    status.alerts = source.alerts()
    return status
