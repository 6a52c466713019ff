"""The fleet's queries as small expressions that print as PromQL and evaluate on one
``/metrics`` snapshot.

The dashboard, the alert rules and ``tierwise observe status`` ask the same questions
(requests per second by tier, fallbacks as a share of a workload's requests, p99 from a
histogram); each is written once as an :class:`Expr`. :meth:`Expr.promql` prints it for a
rate window (``5m``, or Grafana's ``$__rate_interval``); :meth:`Expr.evaluate` answers it
from scraped samples, where a counter's rate becomes its total since the process started
(so ratios of counters are ratios of totals) and a histogram's quantile is read from its
cumulative buckets with Prometheus' own interpolation.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

__all__ = [
    "Counter",
    "Expr",
    "Gauge",
    "Key",
    "Match",
    "Quantile",
    "Ratio",
    "Sample",
    "Scaled",
    "histogram_quantile",
    "prom_duration",
    "with_match",
]

#: One sample of a scrape: its name (``tierwise_requests_total``), labels and value.
Sample = tuple[str, Mapping[str, str], float]
#: The values of an expression's ``by`` labels, in that order.
Key = tuple[str, ...]

#: Smallest denominator a ratio divides by where an empty one means "no share" (0).
RATIO_FLOOR = 1e-9


def prom_duration(seconds: float) -> str:
    """``seconds`` as a Prometheus duration: ``1h``, ``5m``, ``30s``, ``500ms``."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class Match:
    """A label matcher: ``label="value"`` (``op`` ``=``) or ``label=~"regex"`` (``=~``)."""

    label: str
    value: str
    op: str = "="

    def promql(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'

    def accepts(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == self.value
        if self.value.startswith("$"):  # a dashboard variable: every value
            return True
        return re.fullmatch(self.value, got) is not None


def _selector(metric: str, match: tuple[Match, ...]) -> str:
    if not match:
        return metric
    return metric + "{" + ", ".join(m.promql() for m in match) + "}"


def _by(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def _key(labels: Mapping[str, str], by: tuple[str, ...]) -> Key:
    return tuple(labels.get(name, "") for name in by)


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Expr(ABC):
    """A query whose answer is one value per combination of its ``by`` labels."""

    by: tuple[str, ...]

    @abstractmethod
    def promql(self, window: str) -> str:
        """The PromQL text, counter rates taken over ``window``."""

    @abstractmethod
    def evaluate(self, samples: Iterable[Sample]) -> dict[Key, float]:
        """The answer from one snapshot of samples (counters as totals)."""

    def metrics(self) -> set[str]:
        """The metric names (as exposed) the query reads."""
        return set()


@dataclass(frozen=True)
class Counter(Expr):
    """``sum by (by) (rate(metric{match}[window]))``; ``window_s`` pins the window (an
    alert's baseline) whatever the caller asks for."""

    metric: str
    by: tuple[str, ...]
    match: tuple[Match, ...] = ()
    window_s: float | None = None

    def promql(self, window: str) -> str:
        span = window if self.window_s is None else prom_duration(self.window_s)
        return f"sum by ({_by(self.by)}) (rate({_selector(self.metric, self.match)}[{span}]))"

    def evaluate(self, samples: Iterable[Sample]) -> dict[Key, float]:
        out: dict[Key, float] = {}
        for name, labels, value in samples:
            if name == self.metric and all(m.accepts(labels) for m in self.match):
                key = _key(labels, self.by)
                out[key] = out.get(key, 0.0) + value
        return out

    def metrics(self) -> set[str]:
        return {self.metric}


@dataclass(frozen=True)
class Gauge(Expr):
    """``max by (by) (metric{match})`` (``how`` ``max``, ``sum`` or ``min``)."""

    metric: str
    by: tuple[str, ...]
    match: tuple[Match, ...] = ()
    how: str = "max"

    def promql(self, window: str) -> str:
        return f"{self.how} by ({_by(self.by)}) ({_selector(self.metric, self.match)})"

    def evaluate(self, samples: Iterable[Sample]) -> dict[Key, float]:
        pick = {"max": max, "min": min}.get(self.how)
        out: dict[Key, float] = {}
        for name, labels, value in samples:
            if name != self.metric or not all(m.accepts(labels) for m in self.match):
                continue
            key = _key(labels, self.by)
            if key not in out:
                out[key] = value
            elif pick is None:
                out[key] += value
            else:
                out[key] = pick(out[key], value)
        return out

    def metrics(self) -> set[str]:
        return {self.metric}


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as Prometheus'
    ``histogram_quantile`` computes it (linear within a bucket; the highest finite bound
    when it falls in the ``+Inf`` bucket); NaN without observations."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    total = ordered[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return ordered[-2][0]
            if bound <= 0:
                return bound
            inside = count - lower_count
            if inside <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / inside
        lower_bound, lower_count = bound, count
    return ordered[-2][0]


@dataclass(frozen=True)
class Quantile(Expr):
    """``histogram_quantile(q, sum by (by, le) (rate(metric_bucket{match}[window])))``;
    ``metric`` is the histogram's base name."""

    q: float
    metric: str
    by: tuple[str, ...]
    match: tuple[Match, ...] = ()

    def promql(self, window: str) -> str:
        inner = _selector(f"{self.metric}_bucket", self.match)
        return (
            f"histogram_quantile({_number(self.q)}, "
            f"sum by ({_by((*self.by, 'le'))}) (rate({inner}[{window}])))"
        )

    def evaluate(self, samples: Iterable[Sample]) -> dict[Key, float]:
        grouped: dict[Key, dict[float, float]] = {}
        for name, labels, value in samples:
            if name != f"{self.metric}_bucket" or "le" not in labels:
                continue
            if not all(m.accepts(labels) for m in self.match):
                continue
            bound = float(labels["le"])
            per_key = grouped.setdefault(_key(labels, self.by), {})
            per_key[bound] = per_key.get(bound, 0.0) + value
        out: dict[Key, float] = {}
        for key, buckets in grouped.items():
            found = histogram_quantile(self.q, buckets.items())
            if not math.isnan(found):
                out[key] = found
        return out

    def metrics(self) -> set[str]:
        return {f"{self.metric}_bucket"}


@dataclass(frozen=True)
class Ratio(Expr):
    """``numerator / denominator``, the denominator's ``by`` a subset of the numerator's
    (``on (...) group_left`` joins them). ``guard`` ``floor`` divides an empty
    denominator as :data:`RATIO_FLOOR` (a share whose numerator is then 0 too);
    ``positive`` leaves such rows out (a figure that means nothing without traffic)."""

    numerator: Expr
    denominator: Expr
    guard: str = "floor"
    by: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        missing = set(self.denominator.by) - set(self.numerator.by)
        if missing:
            raise ValueError(f"denominator labels {sorted(missing)} not in the numerator's")
        object.__setattr__(self, "by", self.numerator.by)

    def promql(self, window: str) -> str:
        den = self.denominator.promql(window)
        den = f"clamp_min({den}, {RATIO_FLOOR:g})" if self.guard == "floor" else f"({den} > 0)"
        join = ""
        if set(self.denominator.by) != set(self.numerator.by):
            join = f" on ({_by(self.denominator.by)}) group_left ()"
        return f"{self.numerator.promql(window)} /{join} {den}"

    def evaluate(self, samples: Iterable[Sample]) -> dict[Key, float]:
        rows = list(samples)
        num = self.numerator.evaluate(rows)
        den = self.denominator.evaluate(rows)
        index = [self.numerator.by.index(label) for label in self.denominator.by]
        out: dict[Key, float] = {}
        for key, value in num.items():
            below = den.get(tuple(key[i] for i in index))
            if below is None or below <= 0:
                if self.guard == "positive" or below is None:
                    continue
                below = RATIO_FLOOR
            out[key] = value / below
        return out

    def metrics(self) -> set[str]:
        return self.numerator.metrics() | self.denominator.metrics()


@dataclass(frozen=True)
class Scaled(Expr):
    """``factor * inner`` (cost per hour from cost per second, per 1M from per one)."""

    factor: float
    inner: Expr
    by: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by", self.inner.by)

    def promql(self, window: str) -> str:
        return f"{_number(self.factor)} * ({self.inner.promql(window)})"

    def evaluate(self, samples: Iterable[Sample]) -> dict[Key, float]:
        return {k: v * self.factor for k, v in self.inner.evaluate(samples).items()}

    def metrics(self) -> set[str]:
        return self.inner.metrics()


def with_match(expr: Expr, match: Match, metrics: set[str]) -> Expr:
    """``expr`` with ``match`` added to every selector of a metric in ``metrics`` (a
    dashboard variable such as ``workload=~"$workload"``)."""
    if isinstance(expr, Ratio):
        return Ratio(
            with_match(expr.numerator, match, metrics),
            with_match(expr.denominator, match, metrics),
            expr.guard,
        )
    if isinstance(expr, Scaled):
        return Scaled(expr.factor, with_match(expr.inner, match, metrics))
    if isinstance(expr, Counter | Gauge | Quantile) and expr.metric in metrics:
        return replace(expr, match=(*expr.match, match))
    return expr
