"""Request metadata from V2 request ``parameters``: ``workload``, ``privacy``,
``residency``, ``deadline_ms``, ``urgency`` (and ``idempotency_key`` for deferred work),
``escalated_from`` (the cascade tier the caller already ran, as a page running the device
stage does: the router goes on with the stages after it).

The V2 ``timeout`` parameter (Triton's, in microseconds; 0 = none) is a deadline too: the
request's deadline is the tighter of ``deadline_ms`` and ``timeout``. ``timeout`` stays in
the parameters the tiers see; the router rewrites it to the time left on each call."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar, get_args

from tierwise.errors import RouteError
from tierwise.protocol import timeout_us_of
from tierwise.router.types import RequestMeta
from tierwise.spec.placement import PRIVACY_RANK, RESIDENCY_RANK
from tierwise.spec.workloads import Privacy, Residency, Urgency

__all__ = ["GATEWAY_PARAMETERS", "META_PARAMETERS", "meta_from_parameters", "with_floor"]

_Value = TypeVar("_Value", bound=str)

#: Request parameters the router reads (and strips before calling a tier).
META_PARAMETERS = frozenset(
    {
        "workload",
        "privacy",
        "residency",
        "deadline_ms",
        "urgency",
        "idempotency_key",
        "escalated_from",
    }
)

#: Request parameters for a gateway, never forwarded to a tier: the router's, and how the
#: client wants its answer encoded (the gateway encodes it).
GATEWAY_PARAMETERS = META_PARAMETERS | {"binary_data_output"}

_ALLOWED: dict[str, tuple[str, ...]] = {
    "privacy": get_args(Privacy),
    "residency": get_args(Residency),
    "urgency": get_args(Urgency),
}


def _choice(parameters: Mapping[str, Any], name: str) -> Any:
    value = parameters.get(name)
    if value is None:
        return None
    if value not in _ALLOWED[name]:
        raise RouteError(name, f"expected one of {', '.join(_ALLOWED[name])}, got {value!r}")
    return value


def meta_from_parameters(
    parameters: Mapping[str, Any], *, default_workload: str | None, received_s: float
) -> RequestMeta:
    """Validate the router's request parameters; RouteError names the one that is wrong
    (ProtocolError a ``timeout`` that is not a whole number of microseconds in range)."""
    workload = parameters.get("workload", default_workload)
    if not isinstance(workload, str) or not workload:
        raise RouteError("workload", "a workload name (request parameter 'workload')")
    deadline = parameters.get("deadline_ms")
    if deadline is not None and (
        isinstance(deadline, bool)
        or not isinstance(deadline, int | float)
        or not math.isfinite(deadline)
        or deadline <= 0
    ):
        raise RouteError("deadline_ms", f"a positive number of milliseconds, got {deadline!r}")
    deadline_ms = float(deadline) if deadline is not None else None
    escalated_from = parameters.get("escalated_from")
    if escalated_from is not None and (not isinstance(escalated_from, str) or not escalated_from):
        raise RouteError("escalated_from", f"the name of a cascade tier, got {escalated_from!r}")
    timeout_us = timeout_us_of(parameters)
    if timeout_us > 0 and (deadline_ms is None or timeout_us / 1000.0 < deadline_ms):
        deadline_ms = timeout_us / 1000.0
    return RequestMeta(
        workload=workload,
        privacy=_choice(parameters, "privacy"),
        residency=_choice(parameters, "residency"),
        deadline_ms=deadline_ms,
        urgency=_choice(parameters, "urgency"),
        received_s=received_s,
        escalated_from=escalated_from,
    )


def _stricter(
    asked: _Value | None, floor: _Value | None, rank: Mapping[_Value, int]
) -> _Value | None:
    if floor is None or asked is None:
        return asked if floor is None else floor
    if asked not in rank:  # left for the policy to name
        return asked
    return asked if rank[asked] >= rank[floor] else floor


def with_floor(
    meta: RequestMeta,
    *,
    privacy: Privacy | None = None,
    residency: Residency | None = None,
    budget_spent: bool = False,
) -> RequestMeta:
    """``meta`` with its privacy and residency no looser than ``privacy`` and
    ``residency`` (None: no floor), and ``budget_spent`` set when given. The policy then
    applies the workload's own class the same way: the strictest of the three wins."""
    new_privacy = _stricter(meta.privacy, privacy, PRIVACY_RANK)
    new_residency = _stricter(meta.residency, residency, RESIDENCY_RANK)
    spent = meta.budget_spent or budget_spent
    if (new_privacy, new_residency, spent) == (meta.privacy, meta.residency, meta.budget_spent):
        return meta
    return replace(meta, privacy=new_privacy, residency=new_residency, budget_spent=spent)
