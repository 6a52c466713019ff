"""Loading plans from YAML (format: :mod:`tierwise.planfile.schema`), every problem at once.

Validation runs in stages as the fleet spec's does (:mod:`tierwise.spec.load`; the YAML
reader and problem collector are the spec's, :mod:`tierwise.spec.yaml_doc`): YAML syntax,
the top level, the linked spec, each tier and workload on its own, the price schedule,
cross-checks among the entries that passed, then the local model files. Each problem names
the file, the field path and what was expected, with the YAML line where one is known;
nothing raises a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from tierwise.errors import SpecError, SpecProblem
from tierwise.planfile.checks import plan_problems, unknown_tier
from tierwise.planfile.schedule import PriceSchedule
from tierwise.planfile.schema import Plan, PlanHeader, TierConfig, WorkloadConfig
from tierwise.security.tls import TlsClientSettings
from tierwise.spec import FleetSpec, load_spec, workload_origin
from tierwise.spec.base import NAME_PATTERN
from tierwise.spec.messages import describe, translate
from tierwise.spec.placement import PRIVACY_RANK, RESIDENCY_RANK
from tierwise.spec.rules import tier_region
from tierwise.spec.yaml_doc import Collector, parse_yaml, read_text

__all__ = ["load_plan", "parse_plan"]

_SECTIONS: dict[str, TypeAdapter[Any]] = {
    "tiers": TypeAdapter(TierConfig),
    "workloads": TypeAdapter(WorkloadConfig),
}
_TOP = "a mapping with tiers and workloads"
_NAME_RE = re.compile(NAME_PATTERN)
_Value = TypeVar("_Value", bound=str)


def _fill(entry: dict[str, Any], field: str, value: object, where: str, out: Collector) -> bool:
    """Take ``value`` from the spec when the plan is silent; report a disagreement (False)."""
    if value is None:
        return True
    if field not in entry:
        entry[field] = value
    elif entry[field] != value:
        out.add_path(f"{where}.{field}", f"the spec says {value!r}, got {describe(entry[field])}")
        return False
    return True


def _narrow(
    entry: dict[str, Any],
    field: str,
    value: _Value,
    rank: Mapping[_Value, int],
    where: str,
    out: Collector,
) -> None:
    """Take ``value`` when silent; the plan may narrow it (more restrictive), not widen."""
    given = entry.setdefault(field, value)
    wider = {k for k, r in rank.items() if r < rank[value]}
    if given in wider:
        out.add_path(
            f"{where}.{field}",
            f"the spec's workload has {field} {value!r}; a plan may narrow it, not widen it"
            f" to {given!r}",
        )


def _entries(data: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """The mapping entries of a section, copied into ``data`` so they can be filled in."""
    entries = data.get(section)
    if not isinstance(entries, dict):
        return {}
    out = {str(k): dict(v) for k, v in entries.items() if isinstance(v, dict)}
    data[section] = {**entries, **out}
    return out


def _merge_spec(data: dict[str, Any], spec: FleetSpec, out: Collector) -> None:
    """Fill tiers named as in the spec (or whose spec_tier names one) and workloads named as
    in the spec with the spec's kind, place, privacy and p99 target."""
    for name, entry in _entries(data, "tiers").items():
        where = f"tiers.{name}"
        spec_tier = entry.get("spec_tier", name)
        found = spec.tiers.get(spec_tier) if isinstance(spec_tier, str) else None
        site = entry.get("site")
        if found is None and "spec_tier" in entry:
            known = ", ".join(spec.tiers)
            out.add_path(
                f"{where}.spec_tier", f"unknown tier {spec_tier!r} (the spec's tiers: {known})"
            )
            continue
        if found is not None:
            if not _fill(entry, "kind", found.kind, where, out):
                continue  # a tier of another kind: its place would only add noise
            _fill(entry, "site", getattr(found, "site", None), where, out)
            _fill(entry, "region", tier_region(found, spec.sites), where, out)
        elif isinstance(site, str) and site in spec.sites:
            entry.setdefault("region", spec.sites[site].region)
        elif isinstance(site, str):
            known = ", ".join(sorted(spec.sites)) or "none"
            out.add_path(f"{where}.site", f"unknown site {site!r} (the spec's sites: {known})")
    for name, entry in _entries(data, "workloads").items():
        found_w = spec.workloads.get(name)
        if found_w is None:
            continue
        where = f"workloads.{name}"
        _narrow(entry, "privacy", found_w.privacy, PRIVACY_RANK, where, out)
        _narrow(entry, "residency", found_w.residency, RESIDENCY_RANK, where, out)
        entry.setdefault("urgency", found_w.urgency)
        _fill(entry, "slo_p99_ms", found_w.slo.p99_ms, where, out)
        origin = workload_origin(spec, found_w)
        if origin.site is not None:
            entry.setdefault("origin_site", origin.site)
        if origin.region is not None:
            entry.setdefault("origin_region", origin.region)


def _validate_entries(
    section: str, entries: object, out: Collector
) -> tuple[dict[str, Any], set[str]]:
    """The valid entries of a section, and every name declared in it."""
    if not isinstance(entries, dict):
        out.add((section,), f"expected a mapping of name to entry, got {describe(entries)}")
        return {}, set()
    if not entries:
        out.add((section,), f"expected at least one entry in {section}, got none")
    valid: dict[str, Any] = {}
    declared: set[str] = set()
    for key, entry in entries.items():
        if not isinstance(key, str) or not _NAME_RE.match(key):
            out.add(
                (section, str(key)),
                f"invalid name: expected letters, digits, '-' and '_', got {describe(key)}",
            )
            continue
        declared.add(key)
        if isinstance(entry, dict):
            if entry.get("name", key) != key:
                out.add((section, key, "name"), f"name {entry['name']!r} differs from its key")
                continue
            entry = {**entry, "name": key}
        try:
            valid[key] = _SECTIONS[section].validate_python(entry)
        except ValidationError as exc:
            for loc, message in translate(exc, (section, key), Plan):
                out.add(loc, message)
    return valid, declared


def _check(
    text: str, file: str, base_dir: Path, check_files: bool
) -> tuple[Plan | None, list[SpecProblem]]:
    out = Collector(file, {})
    data = parse_yaml(text, out, _TOP)
    if data is None:
        return None, out.problems
    if "models" in data and isinstance(data.get("models"), dict):
        out.add(
            (),
            "this looks like a fleet spec (it has a 'models' section), not a router plan;"
            " expected tiers and workloads with cascades (make a plan from a spec with"
            " `tierwise plan SPEC --profiles P -o plan.yaml`)",
        )
        return None, out.problems
    header = {k: v for k, v in data.items() if k not in (*_SECTIONS, "price_schedule")}
    try:
        PlanHeader.model_validate(header)
    except ValidationError as exc:
        for loc, message in translate(exc, (), Plan):
            out.add(loc, message)
    made_from = data.get("made_from")
    if isinstance(made_from, dict):
        for key in ("profiles", "calibrations"):
            paths = made_from.get(key)
            if isinstance(paths, list):
                made_from[key] = [
                    str((base_dir / p).resolve()) if isinstance(p, str) else p for p in paths
                ]
    spec_path = data.get("spec")
    if isinstance(spec_path, str) and spec_path:
        spec_file = (base_dir / spec_path).resolve()
        data["spec"] = str(spec_file)
        try:
            _merge_spec(data, load_spec(spec_file), out)
        except SpecError as exc:
            out.add(("spec",), f"the fleet spec {spec_path!r} has problems (listed below)")
            out.problems.extend(exc.problems)
    valid: dict[str, dict[str, Any]] = {}
    declared: dict[str, set[str]] = {}
    for section in _SECTIONS:
        if section not in data:
            out.add((section,), "field required")
            continue
        valid[section], declared[section] = _validate_entries(section, data[section], out)
    if data.get("price_schedule") is not None:
        try:
            PriceSchedule.model_validate(data["price_schedule"])
        except ValidationError as exc:
            for loc, message in translate(exc, ("price_schedule",), Plan):
                out.add(loc, message)
    if "tiers" in declared:  # without a tiers mapping, every cascade would be "unknown"
        for path, message in plan_problems(
            valid["tiers"], valid.get("workloads", {}), declared["tiers"]
        ):
            out.add_path(path, message)
        _raw_cascade_problems(data, valid.get("workloads", {}), declared["tiers"], out)
    _resolve_models(data, valid.get("tiers", {}), base_dir, check_files, out)
    if out.problems:
        return None, out.problems
    try:
        return Plan.model_validate(data), []
    except ValidationError as exc:  # not expected after the checks above; report it anyway
        for loc, message in translate(exc, (), Plan):
            out.add(loc, message)
        return None, out.problems


def _raw_cascade_problems(
    data: dict[str, Any], valid: Mapping[str, Any], tiers: set[str], out: Collector
) -> None:
    """Unknown tiers in the cascades of workloads that failed their own validation."""
    workloads = data.get("workloads")
    for name, entry in workloads.items() if isinstance(workloads, dict) else ():
        if name in valid or not isinstance(entry, dict):
            continue
        cascade = entry.get("cascade")
        for i, stage in enumerate(cascade if isinstance(cascade, list) else ()):
            tier = stage.get("tier") if isinstance(stage, dict) else None
            if isinstance(tier, str) and tier not in tiers:
                out.add_path(f"workloads.{name}.cascade[{i}].tier", unknown_tier(tier, tiers))


def _resolve_models(
    data: dict[str, Any],
    tiers: Mapping[str, TierConfig],
    base_dir: Path,
    check_files: bool,
    out: Collector,
) -> None:
    """Make local model and TLS file paths absolute (relative to the plan file); check
    they exist."""
    for name, tier in tiers.items():
        if tier.tls is not None:
            _resolve_tls(data, name, tier.tls, base_dir, check_files, out)
        if tier.local is None:
            continue
        path = (base_dir / tier.local.model).resolve()
        if check_files and not path.is_file():
            out.add_path(
                f"tiers.{name}.local.model", f"expected an ONNX file, but there is none at {path}"
            )
        entry = data["tiers"][name]
        data["tiers"][name] = {**entry, "local": {**entry["local"], "model": str(path)}}


def _resolve_tls(
    data: dict[str, Any],
    name: str,
    tls: TlsClientSettings,
    base_dir: Path,
    check_files: bool,
    out: Collector,
) -> None:
    resolved: dict[str, str] = {}
    for field in ("ca", "cert", "key"):
        given = getattr(tls, field)
        if given is None:
            continue
        path = (base_dir / given).resolve()
        if check_files and not path.is_file():
            out.add_path(
                f"tiers.{name}.tls.{field}", f"expected a PEM file, but there is none at {path}"
            )
        resolved[field] = str(path)
    entry = data["tiers"][name]
    data["tiers"][name] = {**entry, "tls": {**entry["tls"], **resolved}}


def parse_plan(
    text: str,
    file: str = "<string>",
    *,
    base_dir: str | os.PathLike[str] | None = None,
    check_files: bool = True,
) -> Plan:
    """Parse and validate plan YAML; relative paths are against ``base_dir`` (default: the
    current directory). ``check_files=False`` skips checking local model files exist.

    Raises :class:`~tierwise.errors.SpecError` listing every problem found.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    plan, problems = _check(text, file, base, check_files)
    if plan is None:
        raise SpecError(problems)
    return plan


def load_plan(path: str | os.PathLike[str], *, check_files: bool = True) -> Plan:
    """Load and validate the plan at ``path``; relative paths are against its folder.

    Raises :class:`~tierwise.errors.SpecError` listing every problem: unreadable file, YAML
    syntax, wrong types, unknown fields or names, broken cross-references, missing files.
    """
    text, problem = read_text(path)
    if text is None:
        raise SpecError([problem] if problem else [])
    file = os.fspath(path)
    return parse_plan(text, file, base_dir=Path(file).parent, check_files=check_files)
