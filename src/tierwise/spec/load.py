"""Loading fleet specs from YAML, reporting every problem at once.

Validation runs in stages so one run finds as much as it can: YAML syntax, the top-level
shape, each entry of each section on its own (a broken tier does not hide a broken
workload), then cross-references among the entries that passed. Each problem names the
file, the field path and what was expected, with the YAML line where one is known
(:mod:`tierwise.spec.yaml_doc`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tierwise.errors import SpecError, SpecProblem
from tierwise.spec.artifacts import artifact_findings
from tierwise.spec.base import NAME_PATTERN
from tierwise.spec.checks import cross_reference_problems, raw_reference_problems
from tierwise.spec.fleet import SECTIONS, FleetSpec, SpecHeader
from tierwise.spec.messages import Loc, describe, translate
from tierwise.spec.tiers import Region, Site, Tier
from tierwise.spec.workloads import ModelSpec, Workload
from tierwise.spec.yaml_doc import Collector, parse_yaml, read_text

__all__ = ["SpecCheck", "check_files", "load_spec", "parse_spec", "validate_files"]

_ENTRY_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "regions": TypeAdapter(Region),
    "sites": TypeAdapter(Site),
    "tiers": TypeAdapter(Tier),
    "models": TypeAdapter(ModelSpec),
    "workloads": TypeAdapter(Workload),
}
_REQUIRED_SECTIONS = ("tiers", "models", "workloads")
_NAME_RE = re.compile(NAME_PATTERN)


_SPEC_TOP = "a mapping with tiers, models and workloads"


def _validate_header(data: Mapping[Any, Any], out: Collector) -> None:
    allowed = set(SpecHeader.model_fields) | set(SECTIONS)
    header = {k: v for k, v in data.items() if k in SpecHeader.model_fields}
    unknown = {k: v for k, v in data.items() if k not in allowed}
    try:
        SpecHeader.model_validate({**header, **unknown})
    except ValidationError as exc:
        for loc, message in translate(exc, (), FleetSpec):
            out.add(loc, message)


def _validate_section(
    section: str, entries: object, out: Collector
) -> tuple[dict[str, Any], dict[str, object]]:
    """The valid entries of one section, and the invalid ones as written."""
    if not isinstance(entries, dict):
        out.add((section,), f"expected a mapping of name to entry, got {describe(entries)}")
        return {}, {}
    valid: dict[str, Any] = {}
    invalid: dict[str, object] = {}
    adapter = _ENTRY_ADAPTERS[section]
    for key, entry in entries.items():
        loc: Loc = (section, str(key))
        if not isinstance(key, str) or not _NAME_RE.match(key):
            message = f"invalid name: expected letters, digits, '-' and '_', got {describe(key)}"
            out.add(loc, message)
            continue
        invalid[key] = entry
        if isinstance(entry, dict):
            if entry.get("name", key) != key:
                out.add((*loc, "name"), f"name {entry['name']!r} differs from its key {key!r}")
                continue
            entry = {**entry, "name": key}
        try:
            valid[key] = adapter.validate_python(entry)
        except ValidationError as exc:
            for sub, message in translate(exc, loc, FleetSpec):
                out.add(sub, message)
        else:
            del invalid[key]
    return valid, invalid


def _validate(data: dict[Any, Any], out: Collector) -> FleetSpec | None:
    _validate_header(data, out)
    valid: dict[str, dict[str, Any]] = {}
    invalid: dict[str, dict[str, object]] = {}
    for section in SECTIONS:
        if section not in data:
            if section in _REQUIRED_SECTIONS:
                out.add((section,), "field required")
            valid[section], invalid[section] = {}, {}
            continue
        valid[section], invalid[section] = _validate_section(section, data[section], out)
    declared = {s: [*valid[s], *invalid[s]] for s in SECTIONS}
    for section, entries in invalid.items():
        for name, entry in entries.items():
            for path, message in raw_reference_problems(section, name, entry, declared):
                out.add_path(path, message)
    if "tiers" in data and isinstance(data["tiers"], dict) and not data["tiers"]:
        out.add(("tiers",), "expected at least one tier, got none")
    for path, message in cross_reference_problems(
        regions=valid["regions"],
        sites=valid["sites"],
        tiers=valid["tiers"],
        models=valid["models"],
        workloads=valid["workloads"],
        declared=declared,
    ):
        out.add_path(path, message)
    if out.problems:
        return None
    try:
        return FleetSpec.model_validate(data)
    except ValidationError as exc:  # not expected after the checks above; report it anyway
        for loc, message in translate(exc, (), FleetSpec):
            out.add(loc, message)
        return None


def _check(text: str, file: str) -> tuple[FleetSpec | None, Collector]:
    out = Collector(file, {})
    data = parse_yaml(text, out, _SPEC_TOP)
    if data is None:
        return None, out
    if _looks_like_a_plan(data):
        out.add(
            (),
            "this looks like a router plan (its workloads have a 'cascade'), not a fleet spec;"
            " expected tiers, models and workloads (a plan is read by `tierwise route` and"
            " `tierwise gateway --plan`)",
        )
        return None, out
    spec = _validate(data, out)
    return spec, out


def _looks_like_a_plan(data: Mapping[Any, Any]) -> bool:
    workloads = data.get("workloads")
    if "models" in data or not isinstance(workloads, dict):
        return False
    return any(isinstance(w, dict) and "cascade" in w for w in workloads.values())


def parse_spec(text: str, file: str = "<string>") -> FleetSpec:
    """Parse and validate spec YAML text; ``file`` names it in problems.

    Raises :class:`~tierwise.errors.SpecError` listing every problem found.
    """
    spec, out = _check(text, file)
    if spec is None:
        raise SpecError(out.problems)
    return spec


def load_spec(path: str | os.PathLike[str]) -> FleetSpec:
    """Load and validate the fleet spec at ``path``.

    Raises :class:`~tierwise.errors.SpecError` listing every problem found: unreadable file,
    YAML syntax, wrong types, missing or unknown fields, broken cross-references.
    """
    text, problem = read_text(path)
    if text is None:
        raise SpecError([problem] if problem else [])
    return parse_spec(text, os.fspath(path))


@dataclass(frozen=True)
class SpecCheck:
    """What checking spec files found, in file order: ``problems`` make a file invalid,
    ``warnings`` do not (a variant's file that is not there yet,
    :mod:`tierwise.spec.artifacts`)."""

    problems: list[SpecProblem]
    warnings: list[SpecProblem]


def check_files(paths: Iterable[str | os.PathLike[str]]) -> SpecCheck:
    """Every problem and warning in every file: the spec itself, then the files its
    variants name (relative to the spec's folder), as ``tierwise validate`` reports them."""
    problems: list[SpecProblem] = []
    warnings: list[SpecProblem] = []
    for path in paths:
        text, problem = read_text(path)
        if text is None:
            problems.extend([problem] if problem else [])
            continue
        file = os.fspath(path)
        spec, out = _check(text, file)
        if spec is not None:
            warn = Collector(file, out.lines)
            for loc, message, is_error in artifact_findings(spec, file):
                (out if is_error else warn).add(loc, message)
            warnings.extend(warn.problems)
        problems.extend(out.problems)
    return SpecCheck(problems, warnings)


def validate_files(paths: Iterable[str | os.PathLike[str]]) -> list[SpecProblem]:
    """Every problem in every file, in file order; an empty list means all are valid
    (warnings, such as a variant's file not there yet, are left out: :func:`check_files`)."""
    return check_files(paths).problems
