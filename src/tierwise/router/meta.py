"""Request metadata from V2 request ``parameters``: ``workload``, ``privacy``,
``residency``, ``deadline_ms``, ``urgency`` (and ``idempotency_key`` for deferred work)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, get_args

from tierwise.errors import RouteError
from tierwise.router.types import Privacy, RequestMeta, Residency, Urgency

__all__ = ["META_PARAMETERS", "meta_from_parameters"]

#: Request parameters the router reads (and strips before calling a tier).
META_PARAMETERS = frozenset(
    {"workload", "privacy", "residency", "deadline_ms", "urgency", "idempotency_key"}
)

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
    """Validate the router's request parameters; RouteError names the one that is wrong."""
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
    return RequestMeta(
        workload=workload,
        privacy=_choice(parameters, "privacy"),
        residency=_choice(parameters, "residency"),
        deadline_ms=float(deadline) if deadline is not None else None,
        urgency=_choice(parameters, "urgency"),
        received_s=received_s,
    )
