"""What an operator asks for when a rollout starts, checked before anything moves.

``stages`` is ``canary`` (the nodes among the selected that carry the canary label)
followed by ascending percentages of the selected nodes, ending at 100:
``canary,10,50,100``. ``interval_s`` is how long each stage is analysed before the next
(one analysis per interval, over the interval just past); ``stage_intervals_s`` gives a
stage its own. Durations read as ``30s``, ``2m``, ``500ms`` or plain seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tierwise.control.gates import GATES, Gate, default_gates, parse_gate
from tierwise.control.selector import parse_selector
from tierwise.errors import ConfigError
from tierwise.settings_errors import config_error

__all__ = ["CANARY", "RolloutRequest", "Stage", "parse_duration", "parse_stages"]

CANARY = "canary"
#: A stage: the canary pool, or a percentage of the selected nodes.
Stage = str | int

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_REFERENCE = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[0-9a-f]{64})$")
_BUNDLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def parse_duration(value: str | float | int, where: str = "interval") -> float:
    """Seconds in ``value`` (``30s``, ``2m``, ``500ms``, ``1.5``); ConfigError otherwise."""
    if isinstance(value, bool):
        raise ConfigError(where, "a duration such as 30s, 2m or 500ms", value)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value))
        if found is None:
            raise ConfigError(where, "a duration such as 30s, 2m or 500ms", value)
        seconds = float(found.group(1)) * _UNIT_S[found.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(where, "a duration above 0", value)
    return seconds


def parse_stages(value: str | Sequence[Stage]) -> list[Stage]:
    """The stages in ``value`` (``canary,10,50,100`` or a list); ConfigError naming the
    stage that is out of place."""
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    expected = "canary first (optional), then ascending percentages from 1 to 100, ending at 100"
    stages: list[Stage] = []
    for position, item in enumerate(items):
        if isinstance(item, str) and item.lower() == CANARY:
            if position != 0:
                raise ConfigError("stages", expected, value)
            stages.append(CANARY)
            continue
        try:
            percent = int(str(item).rstrip("%")) if not isinstance(item, int) else item
        except ValueError:
            raise ConfigError("stages", expected, value) from None
        previous = [s for s in stages if isinstance(s, int)]
        if not 1 <= percent <= 100 or (previous and percent <= previous[-1]):
            raise ConfigError("stages", expected, value)
        stages.append(percent)
    if not stages or stages[-1] != 100:
        raise ConfigError("stages", expected, value)
    return stages


def _default_stages() -> list[Stage]:
    return [CANARY, 10, 50, 100]


class RolloutRequest(BaseModel):
    """A rollout to start: ``bundle`` at ``ref`` on the nodes ``selector`` picks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle: str = Field(pattern=_BUNDLE.pattern)
    ref: str = Field(pattern=_REFERENCE.pattern, description="version, tag or sha256 digest")
    selector: str = Field(default="", max_length=4096)
    canary_selector: str = Field(default="canary=true", max_length=4096)
    stages: list[Stage] = Field(default_factory=lambda: _default_stages())
    interval_s: float = Field(default=30.0, gt=0, le=86_400)
    stage_intervals_s: list[float] | None = None
    threshold: int = Field(default=2, ge=1, le=100)
    gates: list[Gate] = Field(default_factory=default_gates)
    min_requests: int = Field(default=20, ge=1)
    p99_slack_s: float = Field(default=0.002, ge=0)
    converge_timeout_s: float | None = Field(default=None, gt=0)
    max_inconclusive: int = Field(default=20, ge=1, le=10_000)
    reason: str | None = Field(default=None, max_length=1024)

    @field_validator("selector", "canary_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        return str(parse_selector(value))

    @field_validator("stages", mode="before")
    @classmethod
    def _stages(cls, value: Any) -> list[Stage]:
        if not isinstance(value, str | list | tuple):
            raise ValueError("stages: expected canary,10,50,100 or a list of them")
        return parse_stages(value)

    @field_validator("gates", mode="before")
    @classmethod
    def _gates(cls, value: Any) -> list[Gate]:
        if not isinstance(value, list):
            raise ValueError("gates: expected a list such as ['p99_ratio=1.5']")
        gates: list[Gate] = []
        for item in value:
            if isinstance(item, Gate):
                gates.append(item)
            elif isinstance(item, str):
                gates.append(parse_gate(item))
            elif isinstance(item, dict) and set(item) == {"name", "limit"}:
                gates.append(parse_gate(f"{item['name']}={item['limit']}"))
            else:
                raise ValueError(f"gates: expected NAME=LIMIT with NAME one of {', '.join(GATES)}")
        return gates

    def checked(self) -> RolloutRequest:
        """Itself, when the per-stage intervals fit the stages."""
        if self.stage_intervals_s is not None:
            if len(self.stage_intervals_s) != len(self.stages):
                raise ConfigError(
                    "stage_intervals_s",
                    f"one interval per stage ({len(self.stages)})",
                    self.stage_intervals_s,
                )
            if any(not math.isfinite(s) or s <= 0 for s in self.stage_intervals_s):
                raise ConfigError("stage_intervals_s", "intervals above 0", self.stage_intervals_s)
        return self

    def interval_of(self, stage: int) -> float:
        """The analysis interval of the stage at index ``stage``."""
        if self.stage_intervals_s is not None:
            return self.stage_intervals_s[stage]
        return self.interval_s

    @classmethod
    def from_doc(cls, doc: Any) -> RolloutRequest:
        """A request from a JSON document; ConfigError naming the first field refused."""
        if not isinstance(doc, dict):
            raise ConfigError("rollout", "a JSON object", type(doc).__name__)
        try:
            return cls.model_validate(doc).checked()
        except ValidationError as exc:
            raise config_error(exc, cls) from exc
