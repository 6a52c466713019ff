"""The device report's shape (:class:`DeviceReport`), checked strictly: no unknown fields,
non-negative integer counts, finite numbers, bounded sizes, names as the spec writes them,
outcomes and drift keys from fixed sets. :mod:`tierwise.telemetry.device` takes reports
at the gateway; :mod:`tierwise.telemetry.device_report` builds them on the device."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from tierwise.spec.base import NAME_PATTERN

__all__ = [
    "DEVICE_OUTCOMES",
    "DEVICE_TELEMETRY_PATH",
    "DRIFT_KEYS",
    "MAX_BOUNDS",
    "MAX_WINDOW_S",
    "NAME",
    "DeviceReport",
    "LatencyHistogram",
    "report_problem",
]

#: where the gateway takes reports
DEVICE_TELEMETRY_PATH = "/v2/telemetry/device"
#: most latency bounds a report may carry
MAX_BOUNDS = 64
#: the longest window a report may cover (s)
MAX_WINDOW_S = 7 * 86_400.0
_MAX_COUNT = 10**12
#: a name as the spec writes them, at most 64 characters
NAME = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]
_Outcome = Literal["answered", "escalated", "degraded", "deferred", "no_route", "deadline", "error"]
#: the outcomes a device may count (the router's, and ``escalated`` for a device's own)
DEVICE_OUTCOMES: tuple[str, ...] = get_args(_Outcome)
_DriftKey = Literal[
    "confidence/psi", "confidence/ks", "class/psi", "input_mean/ks", "input_std/ks"
]  # fmt: skip
#: the ``signal/test`` drift scores a report may carry (those a drift monitor gives)
DRIFT_KEYS: tuple[str, ...] = get_args(_DriftKey)
_REPORT_ID = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")]
_COUNT = Annotated[int, Field(ge=0, le=_MAX_COUNT)]
_FINITE = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LatencyHistogram(_Strict):
    """Request latency on the device: ``counts[i]`` requests took at most ``bounds[i]``
    ms (and more than the bound before); the last count is over the last bound."""

    bounds: list[Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)]] = Field(
        min_length=1, max_length=MAX_BOUNDS
    )
    counts: list[_COUNT] = Field(min_length=2, max_length=MAX_BOUNDS + 1)
    sum_ms: _FINITE | None = None

    @model_validator(mode="after")
    def _shape(self) -> LatencyHistogram:
        if any(b <= a for a, b in pairwise(self.bounds)):
            raise ValueError("latency_ms.bounds must be strictly increasing")
        if len(self.counts) != len(self.bounds) + 1:
            raise ValueError(
                f"latency_ms.counts must hold one count per bound and one over the last"
                f" ({len(self.bounds) + 1}), not {len(self.counts)}"
            )
        return self


class DeviceReport(_Strict):
    """One device report (module docstring)."""

    device_class: NAME
    workload: NAME
    window_s: Annotated[float, Field(gt=0, le=MAX_WINDOW_S, allow_inf_nan=False)]
    report_id: _REPORT_ID | None = None
    counts: dict[_Outcome, _COUNT] = Field(max_length=len(DEVICE_OUTCOMES))
    latency_ms: LatencyHistogram | None = None
    drift: dict[_DriftKey, _FINITE] = Field(default_factory=dict, max_length=len(DRIFT_KEYS))
    samples: list[dict[NAME, list[Any]]] | None = Field(default=None, max_length=16)


def report_problem(exc: ValidationError) -> str:
    """Each error of a refused report: where, and what was expected."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "report"
        parts.append(f"{where}: {error['msg']}")
    return "invalid device report: " + "; ".join(parts[:5])
