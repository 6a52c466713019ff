"""A cohort's figures over an analysis window, from its nodes' counter deltas
(:mod:`tierwise.control.window`): the p99 read from their merged latency buckets as
Prometheus' ``histogram_quantile`` reads them, and the error rate, agreement with the
cloud tier, joules per inference and fallback rate the gates compare."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import reduce
from typing import Any

from tierwise.control.window import Delta
from tierwise.errors import ConfigError
from tierwise.observe.promql import histogram_quantile

__all__ = ["CohortStats", "cohort_stats", "quantile"]


def quantile(q: float, bounds: tuple[float, ...], counts: tuple[int, ...]) -> float | None:
    """The ``q`` quantile of a histogram given as per-bucket (NOT cumulative) ``counts``
    over upper ``bounds`` plus a last ``+Inf`` bucket, as Prometheus'
    ``histogram_quantile`` reads it: linear within the bucket it falls in, the lowest
    bucket interpolated from 0, the highest finite bound when it falls in ``+Inf``.
    None without observations, or when the histogram has no finite bound."""
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 1:
        raise ConfigError("q", "a quantile in [0, 1]", q)
    if len(counts) != len(bounds) + 1:
        raise ConfigError("counts", f"{len(bounds) + 1} counts (one per bound, then +Inf)", counts)
    if not bounds or sum(counts) <= 0:
        return None
    running, cumulative = 0.0, []
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        running += count
        cumulative.append((bound, running))
    found = histogram_quantile(q, cumulative)
    return None if math.isnan(found) else found


@dataclass(frozen=True)
class CohortStats:
    """The figures of a cohort over a window; None where there is nothing to tell from
    (no requests, fewer than ``min_checks`` re-evaluations, no energy accounting, no
    routed requests). ``checks``: the re-evaluations compared (agree + disagree)."""

    nodes: int
    requests: int
    errors: int
    p99_s: float | None
    error_rate: float | None
    agreement: float | None
    energy_j_per_inference: float | None
    fallback_rate: float | None
    checks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cohort_stats(deltas: Iterable[Delta], *, min_checks: int = 20) -> CohortStats:
    """The statistics of a cohort from its nodes' deltas (``nodes``: how many); the p99
    is read from their merged latency buckets."""
    if isinstance(min_checks, bool) or not isinstance(min_checks, int) or min_checks < 1:
        raise ConfigError("min_checks", "a whole number >= 1", min_checks)
    items = list(deltas)
    if not items:
        return CohortStats(0, 0, 0, None, None, None, None, None)
    total: Delta = reduce(Delta.__add__, items)
    checks = total.agree + total.disagree
    with_requests = total.requests > 0
    p99 = quantile(0.99, total.latency_bounds_s, total.latency_counts) if with_requests else None
    return CohortStats(
        nodes=len(items),
        requests=total.requests,
        errors=total.errors,
        p99_s=p99,
        error_rate=total.errors / total.requests if with_requests else None,
        agreement=total.agree / checks if checks >= min_checks else None,
        energy_j_per_inference=(
            total.energy_j / total.inferences if total.inferences and total.energy_j else None
        ),
        fallback_rate=total.fallbacks / total.routed if total.routed else None,
        checks=checks,
    )
