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

The plan is built as the plan file's own models (:class:`~tierwise.planfile.schema.Plan`
and its entries), so a plan the router could not load fails here, as a
:class:`~tierwise.errors.PlanError`, rather than when it is read; the YAML holds the
fields the writer sets and no others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tierwise.errors import PlanError
from tierwise.plan.options import Stage
from tierwise.plan.perf import network_ms
from tierwise.plan.result import PlanResult
from tierwise.planfile.schema import (
    CascadeStage,
    Expected,
    LocalModel,
    MadeFrom,
    Plan,
    TierConfig,
    WorkloadConfig,
)
from tierwise.spec import (
    DAYS_PER_MONTH,
    SECONDS_PER_DAY,
    CloudTier,
    FleetSpec,
    region_of,
    workload_origin,
)
from tierwise.spec.messages import format_path, translate
from tierwise.spec.yaml_doc import split_path

__all__ = ["Endpoint", "plan_document", "plan_model", "write_plan"]

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


def _rtt_and_cost(
    result: PlanResult, spec: FleetSpec, names: dict[tuple[str, str], str]
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Each router tier's round trips (p50, p99; the largest of its workloads') and its
    cost per request reaching it."""
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
    cost = {
        name: float(f"{usd.get(name, 0.0) / volume:.6g}") if (volume := requests.get(name)) else 0.0
        for name in names.values()
    }
    return rtt, cost


def _tier_configs(
    result: PlanResult,
    spec: FleetSpec,
    names: dict[tuple[str, str], str],
    *,
    plan_dir: Path,
    spec_dir: Path,
    endpoints: Mapping[str, Endpoint],
    zoo_dir: Path | None,
) -> dict[str, TierConfig]:
    rtt, cost = _rtt_and_cost(result, spec, names)
    out: dict[str, TierConfig] = {}
    for (tier_name, variant), name in names.items():
        tier = spec.tiers[tier_name]
        site = None if isinstance(tier, CloudTier) else tier.site
        region = region_of(spec, tier)
        p50, p99 = (round(ms, 6) for ms in rtt.get(name, (0.0, 0.0)))
        if tier.kind == "device":
            model = next(
                spec.workloads[p.workload].model
                for p in result.placements.values()
                if any((s.tier, s.variant) == (tier_name, variant) for s in p.option.stages)
            )
            path = _model_path(spec, model, variant, spec_dir, zoo_dir)
            with _schema(f"tiers.{name}"):
                out[name] = TierConfig(
                    name=name, kind=tier.kind, site=site, region=region,
                    local=LocalModel(model=os.path.relpath(path, plan_dir)),
                    rtt_p50_ms=p50, rtt_p99_ms=p99, cost_usd_per_inference=cost[name],
                    spec_tier=tier_name, variant=variant,
                )  # fmt: skip
            continue
        endpoint = endpoints.get(tier_name)
        if endpoint is None:
            raise PlanError(
                f"tiers.{tier_name}",
                f"the V2 endpoint of remote tier {tier_name!r} (--endpoint {tier_name}=URL)",
            )
        # unset: the router's default applies, and nothing is written
        timeout: dict[str, Any] = {}
        if endpoint.timeout_s is not None:
            timeout["timeout_s"] = endpoint.timeout_s
        with _schema(f"tiers.{name}"):
            out[name] = TierConfig(
                name=name, kind=tier.kind, site=site, region=region,
                url=endpoint.url, model=variant,
                rtt_p50_ms=p50, rtt_p99_ms=p99, cost_usd_per_inference=cost[name],
                auth_header_env=endpoint.auth_header_env, binary=endpoint.binary,
                spec_tier=tier_name, variant=variant,
                **timeout,
            )  # fmt: skip
    return out


def _cascade(stages: Sequence[Stage], names: dict[tuple[str, str], str]) -> list[CascadeStage]:
    last = len(stages) - 1
    return [
        CascadeStage(
            tier=names[(stage.tier, stage.variant)],
            rule=stage.rule if i < last else None,
            threshold=stage.threshold if i < last else None,
            # where calibration read the variant's scores, and what they hold
            output=stage.output,
            scores=(stage.scores or "probabilities") if stage.output is not None else None,
        )
        for i, stage in enumerate(stages)
    ]


def _workload_configs(
    result: PlanResult, spec: FleetSpec, names: dict[tuple[str, str], str]
) -> dict[str, WorkloadConfig]:
    out: dict[str, WorkloadConfig] = {}
    for name, placement in result.placements.items():
        w = spec.workloads[name]
        deadline_ms = None
        if w.urgency == "interactive":
            deadline_ms = w.slo.p99_ms
        elif w.deadline_h is not None:
            deadline_ms = w.deadline_h * _MS_PER_HOUR
        monthly = w.budget.usd_per_month if w.budget is not None else None
        origin = workload_origin(spec, w)
        option = placement.option
        latency = {q: round(v, 6) for q, v in option.latency_ms.items()}
        with _schema(f"workloads.{name}"):
            out[name] = WorkloadConfig(
                name=name, description=w.description or None,
                privacy=w.privacy, residency=w.residency, urgency=w.urgency,
                deadline_ms=deadline_ms,
                budget_usd_per_period=monthly,
                budget_period_s=DAYS_PER_MONTH * SECONDS_PER_DAY if monthly is not None else None,
                origin_site=origin.site, origin_region=origin.region,
                cascade=_cascade(option.stages, names),
                expected=Expected(
                    usd_per_month=round(placement.usd_per_month, 6),
                    usd_per_million=round(placement.usd_per_million, 6),
                    accuracy=round(option.accuracy, 6) if option.accuracy is not None else None,
                    p50_ms=latency.get("p50"), p95_ms=latency.get("p95"),
                    p99_ms=latency.get("p99"), reach=[round(s.reach, 6) for s in option.stages],
                ),
            )  # fmt: skip
    return out


@contextmanager
def _schema(where: str) -> Iterator[None]:
    """Turn the plan file's schema rejecting what is built inside into a PlanError naming
    the field's path (``where`` is the entry's; empty for the plan as a whole)."""
    try:
        yield
    except ValidationError as exc:
        loc, message = translate(exc, split_path(where) if where else (), Plan)[0]
        raise PlanError(format_path(loc) or "plan", message) from exc


def plan_model(
    result: PlanResult,
    spec: FleetSpec,
    *,
    plan_dir: str | os.PathLike[str],
    spec_path: str | os.PathLike[str] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    zoo_dir: str | os.PathLike[str] | None = None,
    profiles: Sequence[str | os.PathLike[str]] = (),
    calibrations: Sequence[str | os.PathLike[str]] = (),
) -> Plan:
    """The plan as the plan file's model, paths relative to ``plan_dir``. ``spec_path``
    (when given) is linked as ``spec:`` and variant paths are relative to its folder;
    the ``profiles`` and ``calibrations`` read are recorded under ``made_from:``.

    Raises :class:`~tierwise.errors.PlanError` when an entry or the plan as a whole breaks
    the plan file's schema (:mod:`tierwise.planfile.schema`)."""
    base = Path(plan_dir).resolve()
    spec_dir = Path(spec_path).resolve().parent if spec_path is not None else base
    names = _names(result)
    made_from = None
    if profiles or calibrations:
        made_from = MadeFrom(
            profiles=[os.path.relpath(Path(p).resolve(), base) for p in profiles],
            calibrations=[os.path.relpath(Path(c).resolve(), base) for c in calibrations],
        )
    tiers = _tier_configs(
        result, spec, names, plan_dir=base, spec_dir=spec_dir, endpoints=endpoints or {},
        zoo_dir=Path(zoo_dir) if zoo_dir is not None else None,
    )  # fmt: skip
    workloads = _workload_configs(result, spec, names)
    with _schema(""):
        return Plan(
            version=1,
            description=f"Written by tierwise plan: ${result.total_usd_per_month:,.2f} per month"
            f" ({result.status}, gap {result.mip_gap:.2%}).",
            spec=os.path.relpath(Path(spec_path).resolve(), base) if spec_path else None,
            made_from=made_from,
            tiers=tiers,
            workloads=workloads,
        )


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
    """The plan as a YAML-ready mapping (see :func:`plan_model`): the fields the writer
    set, without the entries' ``name`` (their key says it) and without empty ones."""
    plan = plan_model(
        result, spec, plan_dir=plan_dir, spec_path=spec_path, endpoints=endpoints,
        zoo_dir=zoo_dir, profiles=profiles, calibrations=calibrations,
    )  # fmt: skip
    unnamed = {"__all__": {"name"}}
    return plan.model_dump(
        exclude={"tiers": unnamed, "workloads": unnamed}, exclude_unset=True, exclude_none=True
    )


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
