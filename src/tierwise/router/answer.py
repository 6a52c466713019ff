"""What the router hands back for one request, with its trace id and :class:`Trace` made
only when someone asks (the gateway's response, a sampler that keeps the request, a client
that looks).

The router records each tier's part as a plain tuple while it works; what the gateway
and metrics need (the answering tier, ``degraded`` and its cause) are fields of the answer.
"""

from __future__ import annotations

from typing import TypeAlias

from tierwise.protocol import InferRequest, InferResponse
from tierwise.router.trace import Attempt, Outcome, Trace, new_trace_id
from tierwise.router.types import Cause

__all__ = ["AttemptRecord", "RoutedAnswer", "settle_response"]

#: ``(tier, outcome, reason, latency_ms, cost_usd, confidence, cause)``, as in Attempt.
AttemptRecord: TypeAlias = tuple[str, Outcome, str, float, float, float | None, Cause | None]


class RoutedAnswer:
    """The router's result: the response (with the ``tier`` that answered, ``degraded``
    and, when degraded, ``degraded_reason`` in its parameters) or, for a deferred request,
    the outbox item id. ``trace_id`` and ``trace`` are made on first access."""

    __slots__ = (
        "_detail",
        "_trace",
        "_trace_id",
        "answered_by",
        "deferred_id",
        "degraded_reason",
        "response",
    )

    def __init__(
        self,
        workload: str,
        route: tuple[str, ...],
        attempts: list[AttemptRecord],
        response: InferResponse | None,
        answered_by: str | None,
        degraded_reason: Cause | None,
        reason: str,
        total_ms: float,
        deferred_id: str | None = None,
    ) -> None:
        # positional, and few stores: this is built on every request
        self.response = response
        self.answered_by = answered_by
        self.degraded_reason = degraded_reason
        self.deferred_id = deferred_id
        self._detail = (workload, route, attempts, reason, total_ms)
        self._trace_id: str | None = None
        self._trace: Trace | None = None

    @property
    def degraded(self) -> bool:
        """The answer missed its workload's bar because a stage was skipped or failed."""
        return self.degraded_reason is not None

    @property
    def workload(self) -> str:
        return self._detail[0]

    @property
    def attempts(self) -> list[AttemptRecord]:
        """Each tier's part, as the router recorded it (see :data:`AttemptRecord`)."""
        return self._detail[2]

    @property
    def reason(self) -> str:
        """Why the router stopped where it did (``answered``, a degradation, a deferral)."""
        return self._detail[3]

    @property
    def total_ms(self) -> float:
        return self._detail[4]

    @property
    def trace_id(self) -> str:
        """16 random hex characters naming this request in logs, samples and responses."""
        if self._trace_id is None:
            self._trace_id = new_trace_id()
        return self._trace_id

    @property
    def cost_usd(self) -> float:
        """What the tiers asked charged for this request."""
        return sum(record[4] for record in self._detail[2])

    @property
    def trace(self) -> Trace:
        """Everything the router did for this request."""
        if self._trace is None:
            workload, route, attempts, reason, total_ms = self._detail
            self._trace = Trace(
                trace_id=self.trace_id,
                workload=workload,
                attempts=[Attempt(*record) for record in attempts],
                route=route,
                answered_by=self.answered_by,
                degraded=self.degraded,
                reason=reason,
                total_ms=total_ms,
                degraded_reason=self.degraded_reason,
            )
        return self._trace

    def __repr__(self) -> str:
        what = f"deferred_id={self.deferred_id!r}" if self.deferred_id else "answered"
        return (
            f"RoutedAnswer({what}, tier={self.answered_by!r},"
            f" degraded_reason={self.degraded_reason!r}, reason={self.reason!r})"
        )


def settle_response(
    response: InferResponse, request: InferRequest, tier: str, cause: Cause | None
) -> None:
    """Make ``response`` what the gateway and the client get: the outputs the request
    asked for (not the score tensor added for the rule) and, in its parameters, the
    ``tier`` that answered, ``degraded`` and its ``degraded_reason``."""
    if request.outputs and len(response.outputs) > len(request.outputs):  # + the scores
        asked = {o.name for o in request.outputs}
        response.outputs = {k: v for k, v in response.outputs.items() if k in asked}
    parameters = dict(response.parameters)
    parameters["tier"] = tier
    parameters["degraded"] = cause is not None
    if cause is not None:
        parameters["degraded_reason"] = cause
    response.parameters = parameters
