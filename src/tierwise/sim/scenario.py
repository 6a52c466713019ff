"""What happens to the fleet during a simulated day: a scenario file.

```yaml
name: bad-tuesday
events:
  - {kind: partition, tiers: ["store-*"], start: "10:00", end: "10:30"}  # cut from upstream
  - {kind: partition, sites: [store], instances: 5, start: "11:00", end: "11:20"}  # 5 stores
  - {kind: partition, tiers: [gpu-pool], start: "16:00", end: "16:05", mode: reset}
  - {kind: heat, tiers: [dock-edge], start: "13:00", end: "15:00"}       # thermal offload
  - {kind: price, tiers: [gpu-pool], factor: 2.0, start: "14:00"}        # cloud repriced
  - {kind: burst, workloads: [parcel-codes], factor: 3, start: "12:00", end: "12:15"}
  - {kind: node_failure, tiers: [dock-edge], nodes: 1, start: "09:00", end: "11:00"}
  - {kind: spot_preemption, tiers: [gpu-pool], rate_per_hour: 0.05}
```

A partition holds calls already on their way until the caller times out
(``mode: blackhole``, as a cut cable) or refuses them at once (``mode: reset``); either
way the router routes around the tier while it lasts. One that names ``sites`` (the
spec's sites, by name or pattern) cuts only those sites, ``instances`` of a site entry's
identical sites (all by default), from the ``tiers`` it names or else from every remote
tier not at the site (:mod:`tierwise.sim.sites`): other sites' routers carry on.

Times are ``HH:MM`` (or ``HH:MM:SS``) from the simulation's start, or seconds; an event
without ``end`` lasts to the end. ``tiers``, ``workloads`` and ``sites`` are names or
shell patterns (``store-*``) of the plan's tiers (or the spec tiers they run on), its
workloads and the spec's sites; a pattern that matches nothing is refused with the file
and the field named, as is any other mistake.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tierwise.errors import ConfigError
from tierwise.settings_errors import settings_error
from tierwise.yaml_limits import load_settings_file

__all__ = ["EventKind", "Scenario", "ScenarioEvent", "load_scenario", "parse_time_s"]

EventKind = Literal["partition", "heat", "price", "burst", "node_failure", "spot_preemption"]
_CLOCK = re.compile(r"^(\d{1,3}):([0-5]\d)(?::([0-5]\d(?:\.\d+)?))?$")
#: what each kind of event needs besides its times
_NEEDS: dict[str, tuple[str, ...]] = {
    "partition": (),  # tiers or sites
    "heat": ("tiers",),
    "price": ("tiers", "factor"),
    "burst": ("workloads", "factor"),
    "node_failure": ("tiers", "nodes"),
    "spot_preemption": ("tiers", "rate_per_hour"),
}


def parse_time_s(value: object, field: str) -> float:
    """Seconds from the start for ``HH:MM[:SS]`` or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(field, "HH:MM, HH:MM:SS or seconds", value)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(field, "seconds >= 0", value)
        return float(value)
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match:
            hours, minutes, seconds = match.groups()
            return int(hours) * 3600.0 + int(minutes) * 60.0 + float(seconds or 0.0)
    raise ConfigError(field, "HH:MM, HH:MM:SS or seconds", value)


Time = Annotated[float, Field(ge=0)]


class ScenarioEvent(BaseModel):
    """One event (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: EventKind
    start_s: Time = 0.0
    end_s: Time | None = None
    tiers: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    instances: int | None = Field(
        default=None, ge=1, description="a site partition: how many of each entry's sites"
    )
    factor: float | None = Field(default=None, gt=0, le=1000)
    nodes: int | None = Field(default=None, ge=1)
    rate_per_hour: float | None = Field(default=None, ge=0, le=3600)
    mode: Literal["blackhole", "reset"] = Field(
        default="blackhole",
        description="a partition's calls: held until the caller times out, or refused",
    )

    @model_validator(mode="before")
    @classmethod
    def _times(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name in ("start", "end"):
            if name in out:
                out[f"{name}_s"] = parse_time_s(out.pop(name), name)
        return out

    @field_validator("tiers", "workloads", "sites", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _complete(self) -> ScenarioEvent:
        missing = [name for name in _NEEDS[self.kind] if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.kind} event needs {' and '.join(missing)}")
        if self.kind == "partition" and not (self.tiers or self.sites):
            raise ValueError("a partition event needs tiers or sites (or both)")
        if (self.sites or self.instances) and self.kind != "partition":
            raise ValueError(f"sites and instances belong to partition events, not {self.kind}")
        if self.instances and not self.sites:
            raise ValueError("instances counts the sites a partition cuts: name the sites")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end ({self.end_s:g} s) must come after start ({self.start_s:g} s)")
        return self

    def applies_to(self, names: Iterable[str]) -> bool:
        """Whether one of ``names`` (a tier's, or a workload's for a burst) matches one
        of the event's names or patterns."""
        patterns = self.workloads if self.kind == "burst" else self.tiers
        return any(fnmatch.fnmatch(n, p) for n in names for p in patterns)

    def names_site(self, site: str) -> bool:
        """Whether ``site`` (a spec site's name) matches one of the event's sites."""
        return any(fnmatch.fnmatch(site, p) for p in self.sites)

    def active(self, time_s: float) -> bool:
        """Whether the event holds at ``time_s``."""
        return self.start_s <= time_s and (self.end_s is None or time_s < self.end_s)


class Scenario(BaseModel):
    """A named list of events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="scenario", min_length=1, max_length=128)
    description: str = ""
    events: tuple[ScenarioEvent, ...] = Field(default=(), max_length=10_000)

    def factor(self, kind: EventKind, names: Iterable[str], time_s: float) -> float:
        """The product of the ``kind`` events' factors (``price`` on tiers, ``burst`` on
        workloads) that hold for ``names`` at ``time_s``."""
        out = 1.0
        for event in self.events:
            if event.kind == kind and event.active(time_s) and event.applies_to(names):
                out *= event.factor or 1.0
        return out

    def times_s(self) -> list[float]:
        """Every start and end, in order: the moments the fleet's state can change."""
        out = {e.start_s for e in self.events} | {e.end_s for e in self.events if e.end_s}
        return sorted(out)

    def check(
        self, tiers: Iterable[str], workloads: Iterable[str], source: str,
        sites: Iterable[str] = (),
    ) -> None:  # fmt: skip
        """ConfigError naming ``source`` and the field for a pattern that matches no tier
        (``tiers``: plan tiers and the spec tiers they run on), no workload or no site
        (the spec's)."""
        tier_names, workload_names = sorted(set(tiers)), sorted(set(workloads))
        site_names = sorted(set(sites))
        for i, event in enumerate(self.events):
            checks = (
                ("tiers", event.tiers, tier_names),
                ("workloads", event.workloads, workload_names),
                ("sites", event.sites, site_names),
            )
            for field, names, known in checks:
                for pattern in names:
                    if not fnmatch.filter(known, pattern):
                        raise ConfigError(
                            f"{source}: events[{i}].{field}",
                            f"a name or pattern matching one of {', '.join(known) or '(none)'}",
                            pattern,
                        )


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file; ConfigError names the file and each problem (an empty file
    is one: a scenario of no events says so, ``events: []``)."""
    data = load_settings_file(path)
    if not data:
        raise ConfigError(str(path), "a scenario: name and events (events: [] for none)")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise settings_error(str(path), exc, Scenario) from exc
