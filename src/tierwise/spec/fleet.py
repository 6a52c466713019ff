"""The whole fleet spec: header fields and the five named sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tierwise.spec.base import Name, SpecModel, inject_names
from tierwise.spec.checks import cross_reference_problems
from tierwise.spec.tiers import Region, Site, Tier
from tierwise.spec.workloads import ModelSpec, Workload

__all__ = ["SECTIONS", "FleetSpec", "SpecHeader"]

#: The named sections of a spec, in the order they are validated.
SECTIONS = ("regions", "sites", "tiers", "models", "workloads")


class SpecHeader(SpecModel):
    """The top-level scalar fields of a spec."""

    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None


class FleetSpec(SpecHeader):
    """A fleet: regions, sites, tiers, models and workloads, each a mapping of name to entry.

    Entries carry their key as ``name``. Cross-references are checked at construction
    (:func:`~tierwise.spec.checks.cross_reference_problems`); :func:`~tierwise.spec.load_spec`
    reports the same problems with file and field path.
    """

    regions: dict[Name, Region] = Field(default_factory=dict)
    sites: dict[Name, Site] = Field(default_factory=dict)
    tiers: dict[Name, Tier] = Field(min_length=1)
    models: dict[Name, ModelSpec]
    workloads: dict[Name, Workload]

    @model_validator(mode="before")
    @classmethod
    def _name_entries(cls, data: object) -> object:
        if isinstance(data, dict):
            return {k: inject_names(v) if k in SECTIONS else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _cross_references(self) -> FleetSpec:
        problems = cross_reference_problems(
            regions=self.regions,
            sites=self.sites,
            tiers=self.tiers,
            models=self.models,
            workloads=self.workloads,
        )
        if problems:
            raise ValueError("; ".join(f"{path}: {message}" for path, message in problems))
        return self
