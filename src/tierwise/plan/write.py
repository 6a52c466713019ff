"""Write a plan as the router's ``plan.yaml`` (format: :mod:`tierwise.planfile.schema`).

Each ``(spec tier, variant)`` pair some placement uses becomes a router tier, named as the
spec tier when that tier serves one variant in the plan, else ``<tier>-<variant>``;
``spec_tier`` and ``variant`` record where it comes from. Device tiers run their variant
in-process: the variant's ``uri`` is a path relative to the spec, or ``zoo://NAME`` for
``NAME/1/model.onnx`` in ``zoo_dir``. Edge and cloud tiers are V2 endpoints given in
``endpoints`` (by spec tier name), serving the variant under its own name.

A router tier's round trips are the largest of its workloads'
(:func:`~tierwise.plan.perf.network_ms`) and its ``cost_usd_per_inference`` is what its
placements' shares of that tier cost per request reaching it. Each workload keeps its
spec's privacy, residency, urgency and origin; its deadline is its SLO p99 (interactive)
or ``deadline_h`` (deferrable); a monthly budget becomes a per-month router budget; its
cascade is its placement's stages with the calibrated rule and threshold, and, where the
calibration recorded it, the ``output`` each variant's scores were read from and what
they hold (``scores``); ``expected`` holds the planner's estimates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tierwise.errors import PlanError
from tierwise.plan.perf import network_ms
from tierwise.plan.result import PlanResult
from tierwise.spec import DAYS_PER_MONTH, SECONDS_PER_DAY, FleetSpec, region_of, workload_origin

__all__ = ["Endpoint", "plan_document", "write_plan"]

_MS_PER_HOUR = 3_600_000.0


@dataclass(frozen=True)
class Endpoint:
    """Where a remote tier's V2 server is, and how to call it."""

    url: str
    auth_header_env: str | None = None
    binary: bool = True
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise PlanError("endpoint.url", "an http:// or https:// URL", repr(self.url))


def _model_path(
    spec: FleetSpec, model: str, variant: str, spec_dir: Path, zoo_dir: Path | None
) -> Path:
    uri = spec.models[model].variants[variant].uri
    field = f"models.{model}.variants.{variant}.uri"
    if uri.startswith("zoo://"):
        if zoo_dir is None:
            raise PlanError("--zoo", f"the zoo folder that {field} ({uri!r}) points into")
        return (zoo_dir / uri.removeprefix("zoo://") / "1" / "model.onnx").resolve()
    if "://" in uri:
        raise PlanError(
            field, "a file path or zoo://NAME for a device tier's in-process model", repr(uri)
        )
    return (spec_dir / uri).resolve()


def _names(result: PlanResult) -> dict[tuple[str, str], str]:
    pairs: dict[str, list[str]] = {}
    for placement in result.placements.values():
        for stage in placement.option.stages:
            variants = pairs.setdefault(stage.tier, [])
            if stage.variant not in variants:
                variants.append(stage.variant)
    taken = set(pairs)
    out: dict[tuple[str, str], str] = {}
    for tier, variants in pairs.items():
        for v in variants:
            if len(variants) == 1:
                out[(tier, v)] = tier
                continue
            name, n = f"{tier}-{v}", 2
            while name in taken:  # another spec tier is called that already
                name, n = f"{tier}-{v}-{n}", n + 1
            taken.add(name)
            out[(tier, v)] = name
    return out


def _tier_entries(
    result: PlanResult,
    spec: FleetSpec,
    names: dict[tuple[str, str], str],
    *,
    plan_dir: Path,
    spec_dir: Path,
    endpoints: Mapping[str, Endpoint],
    zoo_dir: Path | None,
) -> dict[str, dict[str, Any]]:
    usd: dict[str, float] = {}
    requests: dict[str, float] = {}
    rtt: dict[str, tuple[float, float]] = {}
    for placement in result.placements.values():
        workload = spec.workloads[placement.workload]
        for stage in placement.option.stages:
            name = names[(stage.tier, stage.variant)]
            usd[name] = usd.get(name, 0.0) + placement.option.usd_per_month_by_tier[stage.tier]
            requests[name] = requests.get(name, 0.0) + placement.requests_per_month * stage.reach
            tier = spec.tiers[stage.tier]
            p50, p99 = (network_ms(spec, workload, tier, q) for q in ("p50", "p99"))
            old = rtt.get(name, (0.0, 0.0))
            rtt[name] = (max(old[0], p50), max(old[1], p99))
    out: dict[str, dict[str, Any]] = {}
    for (tier_name, variant), name in names.items():
        tier = spec.tiers[tier_name]
        entry: dict[str, Any] = {"kind": tier.kind, "spec_tier": tier_name, "variant": variant}
        site = getattr(tier, "site", None)
        if site is not None:
            entry["site"] = site
        region = region_of(spec, tier)
        if region is not None:
            entry["region"] = region
        if tier.kind == "device":
            model = next(
                spec.workloads[p.workload].model
                for p in result.placements.values()
                if any((s.tier, s.variant) == (tier_name, variant) for s in p.option.stages)
            )
            path = _model_path(spec, model, variant, spec_dir, zoo_dir)
            entry["local"] = {"model": os.path.relpath(path, plan_dir)}
        else:
            endpoint = endpoints.get(tier_name)
            if endpoint is None:
                raise PlanError(
                    f"tiers.{tier_name}",
                    f"the V2 endpoint of remote tier {tier_name!r} (--endpoint {tier_name}=URL)",
                )
            entry["url"] = endpoint.url
            entry["model"] = variant
            if endpoint.auth_header_env is not None:
                entry["auth_header_env"] = endpoint.auth_header_env
            entry["binary"] = endpoint.binary
            if endpoint.timeout_s is not None:
                entry["timeout_s"] = endpoint.timeout_s
        p50, p99 = rtt.get(name, (0.0, 0.0))
        entry["rtt_p50_ms"] = round(p50, 6)
        entry["rtt_p99_ms"] = round(p99, 6)
        volume = requests.get(name, 0.0)
        entry["cost_usd_per_inference"] = (
            float(f"{usd.get(name, 0.0) / volume:.6g}") if volume else 0.0
        )
        out[name] = entry
    return out


def _workload_entries(
    result: PlanResult, spec: FleetSpec, names: dict[tuple[str, str], str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, placement in result.placements.items():
        w = spec.workloads[name]
        entry: dict[str, Any] = {
            "privacy": w.privacy,
            "residency": w.residency,
            "urgency": w.urgency,
        }
        if w.description:
            entry["description"] = w.description
        if w.urgency == "interactive":
            entry["deadline_ms"] = w.slo.p99_ms
        elif w.deadline_h is not None:
            entry["deadline_ms"] = w.deadline_h * _MS_PER_HOUR
        if w.budget is not None and w.budget.usd_per_month is not None:
            entry["budget_usd_per_period"] = w.budget.usd_per_month
            entry["budget_period_s"] = DAYS_PER_MONTH * SECONDS_PER_DAY
        origin = workload_origin(spec, w)
        if origin.site is not None:
            entry["origin_site"] = origin.site
        if origin.region is not None:
            entry["origin_region"] = origin.region
        stages = placement.option.stages
        cascade = []
        for i, stage in enumerate(stages):
            step: dict[str, Any] = {"tier": names[(stage.tier, stage.variant)]}
            if i < len(stages) - 1:
                step["rule"] = stage.rule
                step["threshold"] = stage.threshold
            if stage.output is not None:  # where calibration read the variant's scores
                step["output"] = stage.output
                step["scores"] = stage.scores or "probabilities"
            cascade.append(step)
        entry["cascade"] = cascade
        option = placement.option
        expected: dict[str, Any] = {
            "usd_per_month": round(placement.usd_per_month, 6),
            "usd_per_million": round(placement.usd_per_million, 6),
            **{f"{q}_ms": round(v, 6) for q, v in option.latency_ms.items()},
            "reach": [round(s.reach, 6) for s in stages],
        }
        if option.accuracy is not None:
            expected["accuracy"] = round(option.accuracy, 6)
        entry["expected"] = expected
        out[name] = entry
    return out


def plan_document(
    result: PlanResult,
    spec: FleetSpec,
    *,
    plan_dir: str | os.PathLike[str],
    spec_path: str | os.PathLike[str] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    zoo_dir: str | os.PathLike[str] | None = None,
    profiles: Sequence[str | os.PathLike[str]] = (),
    calibrations: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """The plan as a YAML-ready mapping, paths relative to ``plan_dir``. ``spec_path``
    (when given) is linked as ``spec:`` and variant paths are relative to its folder;
    the ``profiles`` and ``calibrations`` read are recorded under ``made_from:``."""
    base = Path(plan_dir).resolve()
    spec_dir = Path(spec_path).resolve().parent if spec_path is not None else base
    names = _names(result)
    doc: dict[str, Any] = {
        "version": 1,
        "description": f"Written by tierwise plan: ${result.total_usd_per_month:,.2f} per month"
        f" ({result.status}, gap {result.mip_gap:.2%}).",
    }
    if spec_path is not None:
        doc["spec"] = os.path.relpath(Path(spec_path).resolve(), base)
    if profiles or calibrations:
        doc["made_from"] = {
            "profiles": [os.path.relpath(Path(p).resolve(), base) for p in profiles],
            "calibrations": [os.path.relpath(Path(c).resolve(), base) for c in calibrations],
        }
    doc["tiers"] = _tier_entries(
        result, spec, names, plan_dir=base, spec_dir=spec_dir, endpoints=endpoints or {},
        zoo_dir=Path(zoo_dir) if zoo_dir is not None else None,
    )  # fmt: skip
    doc["workloads"] = _workload_entries(result, spec, names)
    return doc


def write_plan(
    result: PlanResult,
    spec: FleetSpec,
    path: str | os.PathLike[str],
    *,
    spec_path: str | os.PathLike[str] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    zoo_dir: str | os.PathLike[str] | None = None,
    profiles: Sequence[str | os.PathLike[str]] = (),
    calibrations: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``plan.yaml`` for the router and gateway (see :func:`plan_document`)."""
    out = Path(path)
    doc = plan_document(
        result, spec, plan_dir=out.parent, spec_path=spec_path, endpoints=endpoints,
        zoo_dir=zoo_dir, profiles=profiles, calibrations=calibrations,
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out
