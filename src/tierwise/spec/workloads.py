"""Models with their variants, and workloads: what runs, where it may run, and its targets.

A workload names one model, the tiers it may use in cascade order (lowest first), its SLO,
traffic, privacy class, residency, urgency, budget and payload sizes. Traffic is the
workload's total across the whole fleet; a month is :data:`~tierwise.spec.base.DAYS_PER_MONTH`
days.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tierwise.spec.base import DAYS_PER_MONTH, SECONDS_PER_DAY, Name, SpecModel, inject_names

__all__ = [
    "Budget",
    "ModelSpec",
    "Privacy",
    "Quantization",
    "Residency",
    "Slo",
    "Traffic",
    "Urgency",
    "Variant",
    "Workload",
]

Privacy = Literal["public", "personal", "sensitive"]
Residency = Literal["device", "site", "region", "any"]
Urgency = Literal["interactive", "deferrable"]

#: The privacy classes, least to most restricted.
PRIVACY_CLASSES: tuple[Privacy, ...] = get_args(Privacy)
Quantization = Literal["fp32", "fp16", "bf16", "int8", "int4"]

_HOURS_PER_DAY = 24


class Variant(SpecModel):
    """One build of a model: where its file is, what runs it, what hardware it needs."""

    name: Name
    uri: str = Field(min_length=1)  # a path relative to the spec, or a URI (oci://, zoo://)
    runtime: str = Field(default="onnxruntime", min_length=1)
    quantization: Quantization = "fp32"
    hardware_tags: list[str] = Field(default_factory=list)  # all must be in a tier's tags
    size_mib: float = Field(gt=0)


class ModelSpec(SpecModel):
    """A model and its variants (at least one)."""

    name: Name
    task: str | None = None
    description: str | None = None
    variants: dict[Name, Variant] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _name_variants(cls, data: object) -> object:
        if isinstance(data, dict) and "variants" in data:
            return {**data, "variants": inject_names(data["variants"])}
        return data


class Slo(SpecModel):
    """Latency targets of one inference in ms; p99 is required, and p50 <= p95 <= p99."""

    p50_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float = Field(gt=0)

    @field_validator("p95_ms", "p99_ms")
    @classmethod
    def _ordered(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return value
        for lower in ("p50_ms", "p95_ms"):
            if lower == info.field_name:
                break
            bound = info.data.get(lower)
            if bound is not None and value < bound:
                raise ValueError(
                    f"expected {info.field_name} >= {lower} ({bound:g}), got {value:g}"
                    " (p50_ms <= p95_ms <= p99_ms)"
                )
        return value


class Traffic(SpecModel):
    """Request volume: exactly one of a mean rate per second, per day or per week.

    ``hourly_profile`` shapes a day: 24 relative weights for the local hours 0..23, any
    scale (normalised to mean 1), so the daily volume is unchanged by it.
    """

    requests_per_s: float | None = Field(default=None, ge=0)
    requests_per_day: float | None = Field(default=None, ge=0)
    requests_per_week: float | None = Field(default=None, ge=0)
    hourly_profile: list[float] | None = None

    @field_validator("hourly_profile")
    @classmethod
    def _day_shape(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        if len(value) != _HOURS_PER_DAY:
            raise ValueError(f"expected exactly 24 values (hours 0..23), got {len(value)}")
        if any(w < 0 for w in value) or sum(value) <= 0:
            raise ValueError("expected non-negative weights with a positive sum")
        return value

    @model_validator(mode="after")
    def _one_rate(self) -> Traffic:
        given = [
            n
            for n in ("requests_per_s", "requests_per_day", "requests_per_week")
            if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of requests_per_s, requests_per_day, requests_per_week"
                + (f", got {', '.join(given)}" if given else "")
            )
        return self

    @property
    def mean_requests_per_s(self) -> float:
        """The mean rate over a day (and over a week)."""
        if self.requests_per_s is not None:
            return self.requests_per_s
        if self.requests_per_day is not None:
            return self.requests_per_day / SECONDS_PER_DAY
        return (self.requests_per_week or 0.0) / (7 * SECONDS_PER_DAY)

    @property
    def requests_per_month(self) -> float:
        """Mean requests in a month of :data:`DAYS_PER_MONTH` days."""
        return self.mean_requests_per_s * SECONDS_PER_DAY * DAYS_PER_MONTH

    def hourly_requests_per_s(self) -> list[float]:
        """The mean rate in each local hour 0..23 (flat without a profile)."""
        mean = self.mean_requests_per_s
        if self.hourly_profile is None:
            return [mean] * _HOURS_PER_DAY
        scale = mean * _HOURS_PER_DAY / sum(self.hourly_profile)
        return [w * scale for w in self.hourly_profile]

    @property
    def peak_requests_per_s(self) -> float:
        """The rate in the busiest hour."""
        return max(self.hourly_requests_per_s())


class Budget(SpecModel):
    """Spending limit: per million inferences, per month, or both."""

    usd_per_million_inferences: float | None = Field(default=None, ge=0)
    usd_per_month: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.usd_per_million_inferences is None and self.usd_per_month is None:
            raise ValueError("expected usd_per_million_inferences or usd_per_month (or both)")
        return self


class Workload(SpecModel):
    """One stream of inferences and the targets it must meet.

    ``tiers`` lists the tiers it may use, lowest first (the cascade order). ``variants``
    pins a variant per tier (tier name -> variant name); unpinned tiers use the first
    variant whose hardware tags the tier has. ``origin_site`` / ``origin_region`` say where
    the data starts when no device tier in ``tiers`` says so (see :mod:`tierwise.spec`).
    ``deadline_h`` bounds how long deferrable work may wait. ``min_accuracy`` is the
    fraction of answers that must be right (as profiles and calibration measure it on the
    held-out split); the planner keeps only placements that reach it.
    """

    name: Name
    description: str | None = None
    model: Name
    tiers: list[Name] = Field(min_length=1)
    variants: dict[Name, Name] = Field(default_factory=dict)
    slo: Slo
    traffic: Traffic
    privacy: Privacy
    residency: Residency = "any"
    urgency: Urgency = "interactive"
    deadline_h: float | None = Field(default=None, gt=0)
    budget: Budget | None = None
    min_accuracy: float | None = Field(default=None, gt=0, le=1)
    request_bytes: int = Field(default=0, ge=0)
    response_bytes: int = Field(default=0, ge=0)
    origin_site: Name | None = None
    origin_region: Name | None = None

    @field_validator("tiers")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"tier {name!r} is listed twice")
            seen.add(name)
        return value

    @field_validator("deadline_h")
    @classmethod
    def _deferrable_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("urgency", "deferrable") != "deferrable":
            raise ValueError("deadline_h applies only to urgency 'deferrable'")
        return value
