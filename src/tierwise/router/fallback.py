"""When an answer is degraded, and why: the router's fallback rules, apart from the
machinery that calls tiers.

An answer is **degraded** when the stage that gave it did not accept it (its escalation
rule put the answer's confidence under the stage's threshold) and a later stage of the
workload's cascade, one that would have been asked next, was skipped or failed: breaker
open, unhealthy, thermal offload, budget spent, no time left before the deadline (the
policy's skips), or no answer (timeout, partition, error, or skipped by the router for an
open breaker or a passed deadline). ``degraded_reason`` is that stage's
:data:`~tierwise.router.types.Cause`. Stages the request's privacy or residency rule out
were never going to be asked, so they degrade nothing; nor does a last stage whose own
rule rejects its answer (there was nothing left to ask).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tierwise.errors import TierError, TierTimeoutError, TierUnavailableError
from tierwise.http.transport import TlsError
from tierwise.router.answer import AttemptRecord
from tierwise.router.types import DEGRADING_CAUSES, Cause, Route

_WHAT = {"skipped": "skipped", "timeout": "timed out", "error": "failed"}

__all__ = ["Degradation", "degradation", "failure_cause", "failures", "settle"]


def failure_cause(exc: TierError) -> Cause:
    """What a tier's failure amounts to: ``timeout``, ``partition`` (it could not be
    reached: refused, reset, unreachable) or ``error`` (including a TLS handshake that
    failed: a certificate problem does not heal when the network does)."""
    if isinstance(exc, TierTimeoutError):
        return "timeout"
    cause = exc.__cause__
    if (
        isinstance(exc, TierUnavailableError)
        and isinstance(cause, OSError)
        and not isinstance(cause, (TimeoutError, TlsError))
    ):
        return "partition"
    return "error"


def failures(attempts: Sequence[AttemptRecord]) -> dict[str, tuple[Cause, str]]:
    """Tier -> (cause, what happened) for the tiers that gave no answer, first first."""
    found: dict[str, tuple[Cause, str]] = {}
    for tier, outcome, reason, _, _, _, cause in attempts:
        if cause is not None and tier not in found:
            found[tier] = (cause, f"{_WHAT.get(outcome, outcome)}: {reason}")
    return found


@dataclass(frozen=True, slots=True)
class Degradation:
    """The stage whose absence degrades an answer: ``tier``, the ``cause``, what happened
    to it (``what``, e.g. ``"skipped: breaker open"``) and whether the policy left it out
    of the route (``by_policy``; otherwise the router tried it)."""

    tier: str
    cause: Cause
    what: str
    by_policy: bool


def degradation(
    cascade: Sequence[str],
    answered_at: int,
    route: Route,
    failed: Mapping[str, tuple[Cause, str]],
) -> Degradation | None:
    """Why an answer from ``cascade[answered_at]`` that its stage did not accept is
    degraded, or None. ``failed`` maps the tiers that gave no answer in this request to
    (cause, what happened); tiers outside ``cascade`` (a policy may route anywhere) count
    as later than all of it."""
    for tier in cascade[answered_at + 1 :]:
        found = failed.get(tier)
        if found is not None:
            return Degradation(tier, found[0], found[1], False)
        for decision in route.decisions:
            if (
                decision.tier == tier
                and not decision.kept
                and decision.cause is not None
                and decision.cause in DEGRADING_CAUSES
            ):
                return Degradation(tier, decision.cause, decision.reason, True)
    for tier, (cause, what) in failed.items():
        if tier not in cascade:
            return Degradation(tier, cause, what, False)
    return None


def settle(
    cascade: Sequence[str],
    answered: str,
    answered_at: int,
    confidence: float,
    threshold: float,
    route: Route,
    attempts: list[AttemptRecord],
) -> tuple[Cause | None, str]:
    """For an answer its stage did not accept: the cause when it is degraded (None when
    nothing later would have been asked) and the trace's reason. A stage the policy left
    out is added to ``attempts`` as skipped, so the trace names it."""
    bar = f"confidence {confidence:.3f} < threshold {threshold:.3f}"
    found = degradation(cascade, answered_at, route, failures(attempts))
    if found is None:
        return None, f"answered below the bar ({bar}); no later stage for this request"
    if found.by_policy:
        what = found.what.removeprefix("skipped: ")
        attempts.append((found.tier, "skipped", what, 0.0, 0.0, None, found.cause))
    reason = (
        f"degraded ({found.cause}): {found.tier} {found.what}; the answer of {answered}"
        f" ({bar}) returned"
    )
    return found.cause, reason
