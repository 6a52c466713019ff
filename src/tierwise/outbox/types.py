"""The outbox's values and errors: items as the store returns them, and what can go
wrong (import them from :mod:`tierwise.outbox`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tierwise.errors import OutboxError, OutboxFullError, OutboxItemNotFoundError

__all__ = [
    "CallbackStatus",
    "ItemStatus",
    "OutboxError",
    "OutboxFullError",
    "OutboxItem",
    "OutboxItemNotFoundError",
]

ItemStatus = Literal["pending", "leased", "done", "failed"]
CallbackStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One queued request as the store last saw it.

    ``status`` is effective: a lease that ran out reads as ``pending``. ``attempts``
    counts claims (deliveries started), so crashed deliveries count too.
    """

    id: str
    tier: str
    payload: bytes
    meta: dict[str, Any]
    status: ItemStatus
    attempts: int
    not_before_s: float
    created_s: float
    updated_s: float
    idempotency_key: str | None = None
    callback_url: str | None = None
    lease_until_s: float | None = None
    lease_token: str | None = None
    last_error: str | None = None
    result: bytes | None = None
    finished_s: float | None = None
    callback_status: CallbackStatus | None = None
    callback_attempts: int = 0
    callback_error: str | None = None
