"""Remote re-evaluation: how often the lower tiers' answers agree with a reference tier.

A workload whose plan entry has ``reeval`` (:class:`~tierwise.planfile.schema.Reeval`) has
a share ``rate`` of the answers its lower stages give (any stage of its cascade but the
last, and not the reference tier itself) re-run on the reference tier (``reeval.tier``,
by default the cascade's last) in a background task. The request never waits for it:
:meth:`Shadow.offer` draws, copies the inputs of a kept request and returns; at most
``max_in_flight`` re-runs per workload run at once, and their cost (the plan's price of
the reference tier) is charged to their own budget, ``budget_usd_per_day`` per UTC day,
not to the workload's. A request whose data may not reach the reference tier (its
privacy class, narrowed by the request or not, or its residency, by the policy's own
rules, :mod:`tierwise.spec.placement`) is never re-run, and ``sensitive`` never is.

Two answers agree when every row has the same argmax of its score tensor: the lower
stage's (the plan's ``output`` for the stage, else the tensor its rule reads by default,
:func:`~tierwise.escalation.rules.pick_score_output`) and the reference's (the same way).
Exported when scraped, through the router's collector:

- ``tierwise_shadow_checks_total{workload,tier,reference,result}``: ``agree``,
  ``disagree``, ``error`` (the reference failed, its breaker is open, or it gave no score
  tensor to compare) or ``over_budget`` (the day's budget or the in-flight bound left
  no room for it);
- ``tierwise_shadow_agreement_ratio{workload,tier,reference}``: the share of agreeing
  answers over the last ``window`` compared, the lower tier's estimated accuracy;
- ``tierwise_shadow_cost_usd_total{workload,reference}``: what the re-runs the reference
  tier was asked for cost, at the plan's price (their own budget, not the workload's).

A score tensor is ``[rows, classes]``; one of any other shape (a 1-D one included: one
score per row or the classes of one row cannot be told apart) is an ``error``, and an
answer whose own scores cannot be read is never re-run nor charged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tierwise.errors import ConfigError, TierError
from tierwise.escalation.rules import pick_score_output
from tierwise.planfile.checks import place_of, site_regions, workload_origin
from tierwise.planfile.schema import Plan
from tierwise.protocol import InferRequest
from tierwise.router.answer import RoutedAnswer
from tierwise.router.types import RequestMeta
from tierwise.spec.placement import Origin, Place, exclusion_reason

if TYPE_CHECKING:
    from tierwise.router.router import Router

__all__ = ["Result", "Shadow"]

log = logging.getLogger("tierwise.router")

Result = Literal["agree", "disagree", "error", "over_budget"]
_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class _Workload:
    """One workload's re-evaluation, resolved from the plan."""

    name: str
    rate: float
    reference: str
    lower: Mapping[str, str | None]  # tier -> the score output the plan names, if any
    reference_output: str | None
    budget_usd_per_day: float
    cost_usd: float
    max_in_flight: int
    window: int
    place: Place
    origin: Origin


def _scores(outputs: Mapping[str, np.ndarray], name: str | None) -> np.ndarray | None:
    """The argmax of each row of the score tensor, or None when there is none."""
    name = name or pick_score_output(outputs)
    found = outputs.get(name) if name is not None else None
    if found is None:
        return None
    scores = np.asarray(found)
    if scores.ndim != 2 or scores.shape[1] < 1:
        return None
    best: np.ndarray = np.argmax(scores, axis=1)
    return best


class Shadow:
    """The re-evaluations of one router's workloads (see the module docstring). The
    router calls :meth:`offer` with each answer and :meth:`close` when it closes. ``rng``
    draws which answers are re-run; ``wall_clock`` dates the spend (UTC days)."""

    def __init__(
        self,
        plan: Plan,
        router: Router,
        *,
        rng: random.Random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._router = router
        self._rng = rng
        self._wall = wall_clock
        regions = site_regions(plan.tiers)
        self.workloads: dict[str, _Workload] = {}
        for name, config in plan.workloads.items():
            reeval, reference = config.reeval, config.reference_tier
            if reeval is None or reference is None or reeval.rate <= 0:
                continue
            if reference not in router.tiers:
                raise ConfigError(
                    f"workloads.{name}.reeval.tier", "a tier of the router", reference
                )
            outputs = {s.tier: s.output for s in config.cascade}
            self.workloads[name] = _Workload(
                name=name,
                rate=reeval.rate,
                reference=reference,
                lower={s.tier: s.output for s in config.cascade[:-1] if s.tier != reference},
                reference_output=outputs.get(reference),
                budget_usd_per_day=reeval.budget_usd_per_day,
                cost_usd=plan.tiers[reference].cost_usd_per_inference,
                max_in_flight=reeval.max_in_flight,
                window=reeval.window,
                place=place_of(plan.tiers[reference], regions),
                origin=workload_origin(config, plan.tiers, regions),
            )
        self._effective = getattr(router.policy, "effective", None)
        self._in_flight = dict.fromkeys(self.workloads, 0)
        self._spent_usd = dict.fromkeys(self.workloads, 0.0)
        self._day = dict.fromkeys(self.workloads, -1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        #: (workload, tier, reference, result) -> checks
        self.checks: dict[tuple[str, str, str, str], int] = {}
        #: (workload, tier, reference) -> the last ``window`` comparisons (True: agreed)
        self.recent: dict[tuple[str, str, str], deque[bool]] = {}
        #: (workload, reference) -> what the re-runs the reference was asked for cost
        self.cost_usd: dict[tuple[str, str], float] = {}

    @property
    def in_flight(self) -> int:
        """Re-runs running now, over all workloads."""
        return len(self._tasks)

    def offer(
        self,
        answer: RoutedAnswer,
        request: InferRequest,
        meta: RequestMeta,
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        """Maybe re-run this answer's request on the reference tier, in the background.
        ``outputs`` are everything the answering tier gave (its score tensor included)."""
        spec = self.workloads.get(answer.workload)
        if spec is None or self._closed:
            return
        tier = answer.answered_by
        if tier is None or tier not in spec.lower or self._rng.random() >= spec.rate:
            return
        if not self._allowed(spec, meta):
            return
        key = (spec.name, tier, spec.reference)
        lower = _scores(outputs, spec.lower[tier])
        if lower is None:  # nothing to compare with: not re-run, not charged
            self._count(key, "error")
            return
        if spec.max_in_flight <= self._in_flight[spec.name] or not self._charge(spec):
            self._count(key, "over_budget")
            return
        copy = InferRequest(
            inputs={k: np.array(v, copy=True) for k, v in request.inputs.items()},
            input_parameters=dict(request.input_parameters),
        )
        self._in_flight[spec.name] += 1
        task = asyncio.get_running_loop().create_task(self._check(spec, key, copy, lower))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _allowed(self, spec: _Workload, meta: RequestMeta) -> bool:
        """Whether the request's data may reach the reference tier (never ``sensitive``)."""
        if self._effective is None:
            return False
        try:
            effective = self._effective(meta)
        except (ConfigError, ValueError):
            return False
        if effective.privacy == "sensitive":
            return False
        found = exclusion_reason(spec.place, effective.privacy, effective.residency, spec.origin)
        return found is None

    def _charge(self, spec: _Workload) -> bool:
        """Take the re-run's cost from the day's budget; False when it does not fit."""
        day = int(self._wall() // _DAY_S)
        if day != self._day[spec.name]:
            self._day[spec.name] = day
            self._spent_usd[spec.name] = 0.0
        spent = self._spent_usd[spec.name] + spec.cost_usd
        if spent > spec.budget_usd_per_day:
            return False
        self._spent_usd[spec.name] = spent
        return True

    async def _check(
        self, spec: _Workload, key: tuple[str, str, str], request: InferRequest, lower: Any
    ) -> None:
        router = self._router
        tier = router.tiers[spec.reference]
        breaker = router.breakers.get(spec.reference)
        result: Result = "error"
        asked = breaker is None or not breaker.is_open
        if not asked:  # nothing spent: the charge goes back to the day's budget
            self._spent_usd[spec.name] = max(0.0, self._spent_usd[spec.name] - spec.cost_usd)
        else:
            where = (spec.name, spec.reference)
            self.cost_usd[where] = self.cost_usd.get(where, 0.0) + spec.cost_usd
        try:
            if asked:
                response = await tier.infer(request, timeout_s=tier.timeout_s)
                reference = _scores(response.outputs, spec.reference_output)
                if reference is not None and reference.shape == lower.shape:
                    result = "agree" if bool(np.all(reference == lower)) else "disagree"
        except (TierError, ConfigError, ValueError) as exc:
            log.debug("re-evaluation on %s failed: %s", spec.reference, exc)
        finally:
            self._in_flight[spec.name] -= 1
        self._count(key, result)
        if result in ("agree", "disagree"):
            recent = self.recent.get(key)
            if recent is None:
                recent = self.recent[key] = deque(maxlen=spec.window)
            recent.append(result == "agree")

    def _count(self, key: tuple[str, str, str], result: Result) -> None:
        full = (*key, result)
        self.checks[full] = self.checks.get(full, 0) + 1

    def agreement(self, workload: str, tier: str) -> float | None:
        """The share of agreeing answers of ``tier`` over the last window; None before any."""
        spec = self.workloads.get(workload)
        recent = self.recent.get((workload, tier, spec.reference)) if spec else None
        return sum(recent) / len(recent) if recent else None

    async def wait(self) -> None:
        """Until the re-runs in flight now are done (for tests and orderly shutdowns)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the re-runs in flight; later offers are ignored."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def families(self) -> Iterator[Metric]:
        """The re-evaluation families, as the router's collector exports them."""
        labels = ["workload", "tier", "reference"]
        checks = CounterMetricFamily(
            "tierwise_shadow_checks",
            "Lower-tier answers re-run on a reference tier, by result.",
            labels=[*labels, "result"],
        )
        for values, count in sorted(self.checks.items()):
            checks.add_metric(list(values), count)
        yield checks
        ratio = GaugeMetricFamily(
            "tierwise_shadow_agreement_ratio",
            "Share of re-run answers the reference tier agreed with, over the last window:"
            " the lower tier's estimated accuracy.",
            labels=labels,
        )
        for key, recent in sorted(self.recent.items()):
            if recent:
                ratio.add_metric(list(key), sum(recent) / len(recent))
        yield ratio
        cost = CounterMetricFamily(
            "tierwise_shadow_cost_usd",
            "What the re-runs on a reference tier cost, at the plan's prices.",
            labels=["workload", "reference"],
        )
        for (workload, reference), usd in sorted(self.cost_usd.items()):
            cost.add_metric([workload, reference], usd)
        yield cost
