"""The price schedule deferrable requests wait for: off-peak hours and spot windows (UTC).

``off_peak_hours_utc`` lists whole hours (``22`` is 22:00-23:00); ``spot_windows_utc``
lists ``[start_hour, end_hour]`` pairs, end exclusive, wrapping past midnight when the end
is not after the start (``[22, 6]`` is 22:00-06:00). A request arriving in any of these
hours runs now; otherwise it waits for the next one to open. Times are UTC seconds since
the epoch on the policy's clock; only whole hours matter, so the schedule is precomputed
into 24 slots and a lookup is two integer operations.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from tierwise.spec.base import SpecModel

__all__ = [
    "HOURS_PER_DAY",
    "SECONDS_PER_HOUR",
    "CheapHours",
    "Deferral",
    "PriceSchedule",
    "hhmm",
]

HOURS_PER_DAY = 24
SECONDS_PER_HOUR = 3600
_SECONDS_PER_DAY = HOURS_PER_DAY * SECONDS_PER_HOUR


class PriceSchedule(SpecModel):
    """When cloud capacity is cheap: off-peak hours and spot windows, in UTC hours."""

    off_peak_hours_utc: list[int] = Field(default_factory=list)
    spot_windows_utc: list[list[int]] = Field(default_factory=list)

    @field_validator("off_peak_hours_utc")
    @classmethod
    def _hours(cls, value: list[int]) -> list[int]:
        bad = [h for h in value if not 0 <= h < HOURS_PER_DAY]
        if bad:
            raise ValueError(f"expected hours 0..23, got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"expected each hour once, got {value}")
        return value

    @field_validator("spot_windows_utc")
    @classmethod
    def _windows(cls, value: list[list[int]]) -> list[list[int]]:
        for window in value:
            if len(window) != 2:
                raise ValueError(f"expected [start_hour, end_hour] pairs, got {window}")
            start, end = window
            if not 0 <= start < HOURS_PER_DAY or not 0 <= end <= HOURS_PER_DAY:
                raise ValueError(
                    f"expected [start_hour 0..23, end_hour 0..24], got [{start}, {end}]"
                )
            if start % HOURS_PER_DAY == end % HOURS_PER_DAY:
                raise ValueError(
                    f"expected a window whose end differs from its start, got [{start}, {end}]"
                )
        return value

    @model_validator(mode="after")
    def _some_window(self) -> PriceSchedule:
        if not self.off_peak_hours_utc and not self.spot_windows_utc:
            raise ValueError(
                "expected off_peak_hours_utc or spot_windows_utc (a schedule with no"
                " window would defer requests forever)"
            )
        return self


def hhmm(seconds_of_day: float) -> str:
    """``50400.0`` -> ``'14:00'`` (UTC time of day)."""
    minutes = int(seconds_of_day // 60) % (HOURS_PER_DAY * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


@dataclass(frozen=True, slots=True)
class Deferral:
    """Wait until ``until_s`` (the next cheap window's start); ``reason`` says why."""

    until_s: float
    reason: str


class CheapHours:
    """A :class:`PriceSchedule` precomputed into 24 hourly slots for fast lookups."""

    __slots__ = ("_hours_to_wait", "_label")

    def __init__(self, schedule: PriceSchedule) -> None:
        label: list[str | None] = [None] * HOURS_PER_DAY
        for hour in schedule.off_peak_hours_utc:
            label[hour] = f"off-peak hour {hour:02d}:00-{(hour + 1) % HOURS_PER_DAY:02d}:00"
        for start, end in schedule.spot_windows_utc:
            length = (end - start) % HOURS_PER_DAY
            for step in range(length):
                hour = (start + step) % HOURS_PER_DAY
                # Name the window by the spot run it belongs to when a run starts there.
                if step == 0 or label[hour] is None:
                    label[hour] = f"spot window {start:02d}:00-{end % HOURS_PER_DAY:02d}:00"
        self._label = label
        # Hours from each hour to the next cheap one (0 when the hour itself is cheap).
        wait = [0] * HOURS_PER_DAY
        for hour in range(HOURS_PER_DAY):
            wait[hour] = next(
                k for k in range(HOURS_PER_DAY) if label[(hour + k) % HOURS_PER_DAY] is not None
            )
        self._hours_to_wait = wait

    def deferral(self, now_s: float) -> Deferral | None:
        """None when ``now_s`` is in a cheap window, else when and why to wait."""
        second_of_day = now_s % _SECONDS_PER_DAY
        hour = int(second_of_day // SECONDS_PER_HOUR)
        wait_h = self._hours_to_wait[hour]
        if wait_h == 0:
            return None
        start_s = now_s - second_of_day % SECONDS_PER_HOUR + wait_h * SECONDS_PER_HOUR
        opens = (hour + wait_h) % HOURS_PER_DAY
        reason = (
            f"deferrable: {hhmm(second_of_day)} UTC is outside the off-peak hours and spot"
            f" windows; waiting {_duration(start_s - now_s)} for the {self._label[opens]} UTC"
        )
        return Deferral(start_s, reason)
