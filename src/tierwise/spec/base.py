"""Shared pieces of the spec models: the strict base class, names and unit conventions.

Every spec model forbids unknown fields (so a typo such as ``latncy`` is reported, not
ignored), is strict about types (YAML ``"150"`` is text, not a number), rejects NaN and
infinities, and is frozen: a loaded spec is a value that later stages only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = [
    "BYTES_PER_GB",
    "DAYS_PER_MONTH",
    "HOURS_PER_MONTH",
    "NAME_PATTERN",
    "SECONDS_PER_DAY",
    "Name",
    "SpecModel",
    "inject_names",
]

#: Days in the average month of the Gregorian calendar, 365.25 / 12. Every monthly figure
#: in tierwise (amortization, connectivity, traffic per month) uses this convention.
DAYS_PER_MONTH = 365.25 / 12
#: Hours in the average month (730.5).
HOURS_PER_MONTH = DAYS_PER_MONTH * 24
SECONDS_PER_DAY = 86_400
#: Egress is priced per decimal gigabyte (10**9 bytes).
BYTES_PER_GB = 1_000_000_000

#: Names of tiers, models, variants, workloads, sites and regions: letters, digits, ``-``
#: and ``_``, so that a field path such as ``tiers.shop-edge.cost.capex_usd`` is unambiguous.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class SpecModel(BaseModel):
    """Base of every spec model: strict, closed (``extra="forbid"``), finite and frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def inject_names(entries: object) -> object:
    """Copy each mapping key into its entry's ``name`` field, so entries know their names.

    A ``name`` written in the entry must equal its key. Anything that is not a mapping of
    mappings is returned unchanged for the field validation to report.
    """
    if not isinstance(entries, Mapping):
        return entries
    out: dict[Any, Any] = {}
    for key, entry in entries.items():
        if isinstance(entry, Mapping) and isinstance(key, str):
            written = entry.get("name", key)
            if written != key:
                raise ValueError(f"name {written!r} differs from its key {key!r}")
            out[key] = {**entry, "name": key}
        else:
            out[key] = entry
    return out
