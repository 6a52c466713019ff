"""The routing policy: which tiers may serve a request, in what order, and why.

:class:`Policy` is pure. The clock (``now_s``, UTC seconds), the observed tier state and
the money spent so far are arguments; it does no I/O and reads no clock or random source,
so the router and the simulator run the very same objects. For each tier of the
workload's cascade (cheapest first) it records a :class:`~tierwise.router.types.TierDecision`,
checking in this order:

1. privacy and residency (the spec's rules, :mod:`tierwise.spec.placement`, on the plan's
   tiers). A request may narrow the
   workload's class (``public`` -> ``personal``), never widen it: a request claiming
   ``public`` on a ``sensitive`` workload stays ``sensitive``, and the reason says so.
2. budget: once ``spent_usd[workload]`` reaches the workload's budget for the period,
   or the request says its caller's own budget is spent (``RequestMeta.budget_spent``),
   cloud tiers are skipped and the route is marked ``degraded``.
3. health: a tier whose breaker is open, that is unhealthy or that flags thermal offload
   is skipped. Device and in-process tiers are never skipped for health (they are the last
   resort); they move to the end of the route instead, so the work goes up first.
4. deadline: remaining = deadline_ms - (now_s - received_s) x 1000; a tier whose observed
   p99 (0 until one is observed) plus its rtt_p99_ms exceeds it is skipped.

A deferrable request whose route includes a cloud tier and that arrives outside the plan's
cheap hours gets ``defer_until_s`` (the next window's start; not when that would pass its
deadline). An empty route means no tier may serve the request; the router answers with an
error. Request metadata it cannot honour raises :class:`~tierwise.errors.RouteError`; a
deadline already passed raises :class:`~tierwise.errors.DeadlineExceededError` (408, as a
tier server answers a request whose ``timeout`` passed before it ran).

Every skip names its :data:`~tierwise.router.types.Cause` in ``TierDecision.cause``.
:meth:`Policy.route_key` says when a route can be reused: routes that depend on neither
the clock nor observed latency are fixed by the request's fields, the budget state and the
tiers' health flags, so the router computes each once per state of those flags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from tierwise.errors import ConfigError, DeadlineExceededError, RouteError
from tierwise.planfile.checks import place_of, site_regions, workload_origin
from tierwise.planfile.schedule import CheapHours
from tierwise.planfile.schema import Plan, WorkloadConfig
from tierwise.router.types import Cause, RequestMeta, Route, TierDecision, TierState
from tierwise.spec.placement import PRIVACY_RANK, RESIDENCY_RANK, exclusion_reason
from tierwise.spec.workloads import PRIVACY_CLASSES, Privacy, Residency, Urgency

__all__ = ["BUDGET_DEGRADED", "CALLER_BUDGET_DEGRADED", "EffectiveRequest", "Policy", "RouteKey"]

#: ``Route.degraded`` when a workload's budget for the period is spent.
BUDGET_DEGRADED = "budget for the period spent: cloud tiers skipped"
#: ``Route.degraded`` when the caller's own budget is spent (``RequestMeta.budget_spent``).
CALLER_BUDGET_DEGRADED = "the caller's budget is spent: cloud tiers skipped"
_NO_TIER = "no tier may serve this request"
_CALLER_SPENT = "skipped: the caller's budget is spent"
_URGENCIES: tuple[Urgency, ...] = ("interactive", "deferrable")

#: What fixes a reusable route: workload, privacy, residency, urgency (as asked; None =
#: the workload's default), whether the workload's budget for the period is spent and
#: whether the caller's is.
RouteKey = tuple[str, str | None, str | None, str | None, bool, bool]

_Value = TypeVar("_Value", bound=str)


def _ms(value: float) -> str:
    """``150.0`` -> ``'150'``, ``149.73`` -> ``'149.7'``."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class EffectiveRequest:
    """What a request amounts to once the workload's defaults are applied."""

    workload: str
    privacy: Privacy
    residency: Residency
    urgency: Urgency
    deadline_ms: float | None


@dataclass(frozen=True, slots=True)
class _Stage:
    name: str
    cloud: bool
    last_resort: bool  # device or in-process: never skipped for health
    rtt_p99_ms: float
    kept: TierDecision


class _Table:
    """One workload, precomputed: its stages and the privacy/residency skips for every
    combination of request privacy and residency (``None`` = the workload's default)."""

    __slots__ = ("budget_usd", "config", "name", "skips", "stages")

    def __init__(self, plan: Plan, config: WorkloadConfig) -> None:
        regions = site_regions(plan.tiers)
        origin = workload_origin(config, plan.tiers, regions)
        self.name = config.name
        self.config = config
        self.budget_usd = config.budget_usd_per_period
        self.stages: tuple[_Stage, ...] = tuple(
            _Stage(
                name=s.tier,
                cloud=plan.tiers[s.tier].kind == "cloud",
                last_resort=plan.tiers[s.tier].kind == "device" or not plan.tiers[s.tier].remote,
                rtt_p99_ms=plan.tiers[s.tier].rtt_p99_ms,
                kept=TierDecision(s.tier, True, "kept"),
            )
            for s in config.cascade
        )
        places = [place_of(plan.tiers[s.tier], regions) for s in config.cascade]
        self.skips: dict[tuple[str | None, str | None], tuple[TierDecision | None, ...]] = {}
        for asked_p in (None, *PRIVACY_RANK):
            privacy, p_note = _effective(asked_p, config.privacy, PRIVACY_RANK)
            for asked_r in (None, *RESIDENCY_RANK):
                residency, r_note = _effective(asked_r, config.residency, RESIDENCY_RANK)
                row: list[TierDecision | None] = []
                for stage, place in zip(self.stages, places, strict=True):
                    excluded = exclusion_reason(place, privacy, residency, origin)
                    if excluded is not None:
                        note = p_note if excluded.rule == "privacy" else r_note
                        head = f"{excluded.rule} {excluded.value!r}"
                        reason = _annotate(excluded.route_message(), head, note)
                        row.append(
                            TierDecision(stage.name, False, f"skipped: {reason}", excluded.rule)
                        )
                    else:
                        row.append(None)
                self.skips[(asked_p, asked_r)] = tuple(row)


def _effective(
    asked: _Value | None, default: _Value, rank: Mapping[_Value, int]
) -> tuple[_Value, str]:
    """The stricter of the request's value and the workload's, and a note on which won."""
    if asked is None or asked == default:
        return default, ""
    if rank[asked] > rank[default]:
        return asked, "narrowed by the request"
    return default, f"the request's {asked!r} cannot widen it"


def _annotate(reason: str, head: str, note: str) -> str:
    """``privacy 'personal' may ...`` -> ``privacy 'personal' (narrowed by ...) may ...``."""
    if not note or not reason.startswith(head):
        return reason
    return f"{head} ({note}){reason[len(head) :]}"


class Policy:
    """Routes requests for the workloads of one plan. Build once; :meth:`route` is cheap."""

    def __init__(self, plan: Plan) -> None:
        if not isinstance(plan, Plan):
            raise ConfigError("plan", "a Plan (see load_plan)", type(plan).__name__)
        self.plan = plan
        self._tables = {name: _Table(plan, w) for name, w in plan.workloads.items()}
        self._cheap = CheapHours(plan.price_schedule) if plan.price_schedule else None
        self._known = ", ".join(sorted(self._tables))

    def _table(self, workload: str) -> _Table:
        table = self._tables.get(workload)
        if table is None:
            raise RouteError("workload", f"unknown workload {workload!r}; known: {self._known}")
        return table

    def effective(self, meta: RequestMeta) -> EffectiveRequest:
        """The request's privacy, residency, urgency and deadline after the defaults and
        the narrow-never-widen rule; RouteError names a value outside the allowed ones."""
        config = self._table(meta.workload).config
        _check_choice("privacy", meta.privacy, PRIVACY_CLASSES)
        _check_choice("residency", meta.residency, tuple(RESIDENCY_RANK))
        _check_choice("urgency", meta.urgency, _URGENCIES)
        privacy, _ = _effective(meta.privacy, config.privacy, PRIVACY_RANK)
        residency, _ = _effective(meta.residency, config.residency, RESIDENCY_RANK)
        deadline = meta.deadline_ms if meta.deadline_ms is not None else config.deadline_ms
        return EffectiveRequest(
            meta.workload, privacy, residency, meta.urgency or config.urgency, deadline
        )

    def skips(self, workload: str) -> dict[str, str | None]:
        """Per tier of the workload's cascade, why its data (at the workload's own privacy
        and residency) may not go there, or None when it may."""
        table = self._table(workload)
        row = table.skips[(None, None)]
        return {
            stage.name: None if skip is None else skip.reason
            for stage, skip in zip(table.stages, row, strict=True)
        }

    def route_key(self, meta: RequestMeta, *, spent_usd: Mapping[str, float]) -> RouteKey | None:
        """A key under which :meth:`route` answers the same for any ``now_s`` and any
        observed latency, as long as the tiers' health flags (breaker open, unhealthy,
        thermal offload) stay as they are; None when the route depends on the clock or
        on latency (a deadline, the request's or the workload's, or a deferrable request
        under a price schedule) or the workload is unknown (:meth:`route` says so)."""
        table = self._tables.get(meta.workload)
        if table is None or meta.deadline_ms is not None:
            return None
        config = table.config
        if config.deadline_ms is not None:
            return None
        urgency = meta.urgency or config.urgency
        if urgency == "deferrable" and self._cheap is not None:
            return None
        budget = table.budget_usd
        spent = budget is not None and spent_usd.get(table.name, 0.0) >= budget
        return (table.name, meta.privacy, meta.residency, meta.urgency, spent, meta.budget_spent)

    def spend_free(self, workload: str) -> bool:
        """Whether :meth:`route_key` for ``workload`` never depends on the money spent (the
        workload has no budget)."""
        table = self._tables.get(workload)
        return table is not None and table.budget_usd is None

    def route(
        self,
        meta: RequestMeta,
        *,
        now_s: float,
        tiers: Mapping[str, TierState],
        spent_usd: Mapping[str, float],
    ) -> Route:
        """The tiers to try for this request, in order, with a decision for each."""
        table = self._table(meta.workload)
        config = table.config
        skips = table.skips.get((meta.privacy, meta.residency))
        if skips is None:  # a value outside the allowed ones: say which
            _check_choice("privacy", meta.privacy, PRIVACY_CLASSES)
            _check_choice("residency", meta.residency, tuple(RESIDENCY_RANK))
            skips = table.skips[(meta.privacy, meta.residency)]
        urgency = meta.urgency or config.urgency
        if urgency not in _URGENCIES:
            _check_choice("urgency", urgency, _URGENCIES)
        deadline_ms = meta.deadline_ms if meta.deadline_ms is not None else config.deadline_ms
        left_ms = None
        if deadline_ms is not None:
            left_ms = _left_ms(table.name, deadline_ms, meta.received_s, now_s)
        workload_spent = (
            table.budget_usd is not None and spent_usd.get(table.name, 0.0) >= table.budget_usd
        )
        budget_spent = workload_spent or meta.budget_spent
        decisions: list[TierDecision] = []
        kept: list[str] = []
        last: list[str] = []
        budget_skipped = cloud_kept = False
        for stage, skip in zip(table.stages, skips, strict=True):
            if skip is not None:
                decisions.append(skip)
                continue
            if budget_spent and stage.cloud:
                budget_skipped = True
                decisions.append(
                    _budget_decision(stage.name, table, spent_usd)
                    if workload_spent
                    else TierDecision(stage.name, False, _CALLER_SPENT, "budget")
                )
                continue
            state = tiers.get(stage.name)
            flag = None if state is None else _health_flag(state)
            if flag is not None and not stage.last_resort:
                skipped = TierDecision(stage.name, False, f"skipped: {flag[1]}", flag[0])
                decisions.append(skipped)
                continue
            decision = stage.kept
            if left_ms is not None:
                p99 = None if state is None else state.p99_ms
                needed_ms = (p99 or 0.0) + stage.rtt_p99_ms
                cost = (
                    f"rtt {_ms(stage.rtt_p99_ms)} ms (no p99 observed yet)"
                    if p99 is None
                    else f"p99 {_ms(p99)} ms + rtt {_ms(stage.rtt_p99_ms)} ms"
                )
                if needed_ms > left_ms:
                    why = f"skipped: {cost} > {_ms(left_ms)} ms left of the deadline"
                    decisions.append(TierDecision(stage.name, False, why, "deadline"))
                    continue
                decision = TierDecision(
                    stage.name, True, f"kept: {cost} <= {_ms(left_ms)} ms left of the deadline"
                )
            if flag is not None:
                last.append(stage.name)
                decision = TierDecision(stage.name, True, f"kept as the last resort: {flag[1]}")
            else:
                kept.append(stage.name)
            cloud_kept = cloud_kept or stage.cloud
            decisions.append(decision)
        order = (*kept, *last)
        degraded = None if order else _NO_TIER
        if budget_skipped:
            degraded = BUDGET_DEGRADED if workload_spent else CALLER_BUDGET_DEGRADED
        deferral = None
        if urgency == "deferrable" and cloud_kept and self._cheap is not None:
            deferral = self._cheap.deferral(now_s)
            # Waiting past the deadline helps no one: run it now instead.
            if (
                deadline_ms is not None
                and deferral is not None
                and deferral.until_s >= meta.received_s + deadline_ms / 1000.0
            ):
                deferral = None
        return Route(
            workload=table.name,
            tiers=order,
            decisions=tuple(decisions),
            defer_until_s=None if deferral is None else deferral.until_s,
            defer_reason=None if deferral is None else deferral.reason,
            degraded=degraded,
        )


def _check_choice(parameter: str, value: object, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise RouteError(
            parameter, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}"
        )


def _left_ms(workload: str, deadline_ms: float, received_s: float, now_s: float) -> float:
    if not math.isfinite(deadline_ms) or deadline_ms <= 0:
        raise RouteError("deadline_ms", f"expected a positive number, got {deadline_ms!r}")
    elapsed_ms = (now_s - received_s) * 1000.0
    left_ms = deadline_ms - elapsed_ms
    if left_ms <= 0:
        raise DeadlineExceededError(
            model=workload,
            timeout_us=math.ceil(deadline_ms * 1000.0),
            waited_ms=elapsed_ms,
            where="before routing; not sent to any tier",
        )
    return left_ms


_BREAKER_OPEN: tuple[Cause, str] = ("breaker_open", "breaker open")
_UNHEALTHY: tuple[Cause, str] = ("unhealthy", "unhealthy")
_THERMAL: tuple[Cause, str] = ("thermal_offload", "thermal offload")


def _health_flag(state: TierState) -> tuple[Cause, str] | None:
    if state.breaker_open:
        return _BREAKER_OPEN
    if not state.healthy:
        return _UNHEALTHY
    if state.thermal_offload:
        return _THERMAL
    return None


def _budget_decision(tier: str, table: _Table, spent_usd: Mapping[str, float]) -> TierDecision:
    spent = spent_usd.get(table.name, 0.0)
    reason = (
        f"skipped: budget for the period spent (${spent:.2f} of ${table.budget_usd or 0.0:.2f}"
        f" per {_ms(table.config.period_s)} s)"
    )
    return TierDecision(tier, False, reason, "budget")
