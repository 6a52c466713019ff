"""Errors of the router: request metadata, tiers, the outbox and idempotency."""

from __future__ import annotations

from collections.abc import Sequence

from tierwise.errors.base import TierwiseError

__all__ = [
    "IdempotencyError",
    "NoRouteError",
    "OutboxError",
    "OutboxFullError",
    "OutboxItemNotFoundError",
    "RouteError",
    "TierError",
    "TierRejectedError",
    "TierTimeoutError",
    "TierUnavailableError",
]


class RouteError(TierwiseError, ValueError):
    """Request metadata the router cannot honour: an unknown workload, a privacy class or
    residency outside the allowed values, a deadline already past. ``parameter`` names it."""

    status_code = 400

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"{parameter}: {reason}")


class NoRouteError(TierwiseError):
    """No tier the policy allowed could answer, and there was no earlier answer to fall
    back on. ``attempts`` lists what was tried and why each failed."""

    status_code = 503

    def __init__(self, workload: str, attempts: Sequence[str]) -> None:
        self.workload = workload
        self.attempts = list(attempts)
        tried = "; ".join(self.attempts) or "no tier was allowed"
        super().__init__(f"workload {workload!r}: no tier could answer ({tried})")


class TierError(TierwiseError):
    """A tier failed to answer. ``tier`` names it."""

    status_code = 502

    def __init__(self, reason: str, *, tier: str) -> None:
        self.reason = reason
        self.tier = tier
        super().__init__(f"tier {tier!r}: {reason}")


class TierRejectedError(TierError):
    """The tier answered that the request itself was wrong (a 4xx); trying another tier
    would not help, so the router passes it on with the tier's status."""

    def __init__(self, reason: str, *, tier: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(reason, tier=tier)


class TierUnavailableError(TierError):
    """The tier is down, overloaded, or its breaker is open: fall back to another."""

    status_code = 503


class TierTimeoutError(TierUnavailableError):
    """The tier gave no answer within the time allowed."""

    status_code = 504

    def __init__(self, *, tier: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"no answer within {timeout_s * 1000:.0f} ms", tier=tier)


class OutboxError(TierwiseError):
    """The outbox could not do what was asked (its database failed, or a bound was hit)."""

    status_code = 500

    def __init__(self, reason: str, *, path: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"outbox {path}: {reason}")


class OutboxFullError(OutboxError):
    """The outbox holds ``max_items`` undelivered items; retry once some have drained."""

    status_code = 503

    def __init__(self, *, path: str, tier: str, max_items: int, pending: int) -> None:
        self.tier = tier
        self.max_items = max_items
        self.pending = pending
        super().__init__(
            f"full: {pending} undelivered items reach max_items={max_items}; "
            f"request for tier {tier!r} not queued",
            path=path,
        )


class OutboxItemNotFoundError(OutboxError):
    """No item with this id (never queued, or purged after it was done)."""

    status_code = 404

    def __init__(self, *, path: str, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(f"no item {item_id!r}", path=path)


class IdempotencyError(TierwiseError):
    """The idempotency store's database failed."""

    status_code = 500

    def __init__(self, reason: str, *, path: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"idempotency store {path}: {reason}")
