"""Per-client limits at the gateway: a request rate, a daily budget and a privacy floor.

A gateway's ``clients:`` settings name clients as their tokens do (``client=`` in the
tokens file). For each one :class:`ClientLimits` says:

- ``rate_per_s`` and ``burst``: a token bucket of ``burst`` requests refilled at
  ``rate_per_s``; a request finding it empty gets 429 with ``Retry-After`` (the seconds
  until a token is back), and other clients' buckets are untouched;
- ``budget_usd_per_day``: what the client's answers may cost per UTC day, counted at the
  plan's prices (each answer's tier calls). Once spent, ``on_budget: degrade`` routes the
  client's requests as a workload whose budget is spent (cloud tiers skipped, answers
  marked degraded with cause ``budget``) and ``on_budget: refuse`` answers 429 naming the
  budget, with ``Retry-After`` at the next UTC midnight. Requests running at the moment
  the budget runs out still finish, so the day's spend may pass it by their cost;
- ``privacy`` and ``residency``: floors (:func:`~tierwise.router.meta.with_floor`): a
  client may be narrowed, never widened, whatever its requests ask.

A client without an entry (or a request without a token) has no limit. State is kept only
for the clients named here, so it is bounded by the settings. :class:`ClientGate` is pure
apart from its clocks, which are passed in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import Field, model_validator

from tierwise.errors import ConfigError, RateLimitedError
from tierwise.router.ledger import SpendLedger
from tierwise.router.meta import with_floor
from tierwise.router.types import RequestMeta
from tierwise.settings_errors import SettingsModel
from tierwise.spec.workloads import Privacy, Residency

__all__ = ["DAY_S", "ClientGate", "ClientLimits", "OnBudget", "TokenBucket"]

#: The budget period: a UTC day.
DAY_S = 86_400.0

OnBudget = Literal["degrade", "refuse"]


class ClientLimits(SettingsModel):
    """One client's limits at the gateway (see the module docstring). ``burst`` defaults
    to one second's worth of ``rate_per_s`` (at least 1)."""

    rate_per_s: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    budget_usd_per_day: float | None = Field(default=None, ge=0)
    on_budget: OnBudget = "degrade"
    privacy: Privacy | None = None
    residency: Residency | None = None

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> ClientLimits:
        if self.burst is not None and self.rate_per_s is None:
            raise ConfigError("burst", "rate_per_s as well (burst is the size of its bucket)")
        return self

    @property
    def bucket_size(self) -> float:
        """How many requests the bucket holds (0 when there is no rate limit)."""
        if self.rate_per_s is None:
            return 0.0
        return float(self.burst) if self.burst is not None else max(1.0, float(self.rate_per_s))


class TokenBucket:
    """``size`` tokens, refilled at ``rate_per_s``; a request takes one."""

    __slots__ = ("rate_per_s", "size", "tokens", "updated_s")

    def __init__(self, rate_per_s: float, size: float, now_s: float) -> None:
        if rate_per_s <= 0 or size < 1:
            raise ConfigError("rate_per_s/size", "rate_per_s > 0 and size >= 1", (rate_per_s, size))
        self.rate_per_s = rate_per_s
        self.size = size
        self.tokens = size
        self.updated_s = now_s

    def take(self, now_s: float) -> float:
        """0.0 when a request may go now (its token taken); else the seconds until one
        may (nothing taken)."""
        tokens = self.tokens + max(0.0, now_s - self.updated_s) * self.rate_per_s
        tokens = min(self.size, tokens)
        self.updated_s = max(now_s, self.updated_s)
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate_per_s


class ClientGate:
    """The limits of the configured clients and their state: one bucket per client with
    a rate, one ledger entry per client with a budget. ``clock`` (monotonic seconds)
    paces the buckets; ``wall_clock`` (UTC seconds) says which day a spend falls in."""

    def __init__(
        self,
        limits: Mapping[str, ClientLimits],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = dict(limits)
        self._clock = clock
        self._wall = wall_clock
        now_s = clock()
        self._buckets = {
            client: TokenBucket(lim.rate_per_s, lim.bucket_size, now_s)
            for client, lim in self.limits.items()
            if lim.rate_per_s is not None
        }
        self.ledger = SpendLedger(default_period_s=DAY_S)

    def __bool__(self) -> bool:
        return bool(self.limits)

    def admit(self, client: str | None) -> ClientLimits | None:
        """The client's limits once its request may go (None: it has none);
        RateLimitedError when its bucket is empty."""
        if client is None:
            return None
        limits = self.limits.get(client)
        if limits is None:
            return None
        bucket = self._buckets.get(client)
        if bucket is not None:
            wait_s = bucket.take(self._clock())
            if wait_s > 0.0:
                raise RateLimitedError(
                    client,
                    f"over its rate limit of {limits.rate_per_s:g} requests/s"
                    f" (burst {bucket.size:g})",
                    retry_after_s=math.ceil(wait_s),
                )
        return limits

    def spent_usd(self, client: str) -> float:
        """What the client's answers cost today (UTC)."""
        return self.ledger.spent_usd(client, self._wall())

    def apply(
        self, client: str, limits: ClientLimits, meta: RequestMeta, *, accepted: bool = False
    ) -> RequestMeta:
        """``meta`` under the client's privacy and residency floors, marked
        ``budget_spent`` when its budget for today is spent and it degrades;
        RateLimitedError naming the budget when it refuses (unless ``accepted``: work
        already taken on, such as a deferred request being delivered, is degraded)."""
        spent = False
        budget = limits.budget_usd_per_day
        if budget is not None:
            now_s = self._wall()
            used = self.ledger.spent_usd(client, now_s)
            if used >= budget:
                if limits.on_budget == "refuse" and not accepted:
                    raise RateLimitedError(
                        client,
                        f"its budget of ${budget:g} per day is spent (${used:.6g} today)",
                        retry_after_s=math.ceil(DAY_S - now_s % DAY_S),
                    )
                spent = True
        return with_floor(
            meta, privacy=limits.privacy, residency=limits.residency, budget_spent=spent
        )

    def charge(self, client: str | None, usd: float) -> None:
        """Count what an answer for ``client`` cost (clients with a budget only)."""
        if client is None or usd <= 0.0:
            return
        limits = self.limits.get(client)
        if limits is not None and limits.budget_usd_per_day is not None:
            self.ledger.add(client, usd, self._wall())
