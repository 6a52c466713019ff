"""The cascade section of a report from a calibration result."""

from __future__ import annotations

from tierwise.errors import ReportError
from tierwise.report.data import CascadeCurve, CascadeData, CurvePoint
from tierwise.router.calibrate_result import Bound, CalibrationResult, Setting

__all__ = ["cascade_from_calibration"]


def _point(setting: Setting) -> CurvePoint:
    return CurvePoint(setting.cost_usd_per_million, setting.accuracy, setting.thresholds)


def _bound(bound: Bound) -> CurvePoint:
    return CurvePoint(bound.cost_usd_per_million, bound.accuracy)


def cascade_from_calibration(result: CalibrationResult, *, rule: str | None = None) -> CascadeData:
    """Every rule's accuracy / cost front, the oracle bound and cloud only from ``result``.

    The chosen point is ``rule``'s (the plan's rule) when given, else the cheapest of the
    rules that reach the target; None when none does.
    """
    curves = tuple(
        CascadeCurve(name, tuple(_point(s) for s in r.curve))
        for name, r in result.rules.items()
        if r.curve
    )
    reached = {name: r.chosen for name, r in result.rules.items() if r.chosen is not None}
    if rule is not None and rule not in result.rules:
        raise ReportError(f"the calibration has no rule {rule!r} (it has {sorted(result.rules)})")
    if rule is not None:
        chosen_rule = rule if rule in reached else None
    else:
        chosen_rule = min(reached, key=lambda n: reached[n].cost_usd_per_million, default=None)
    chosen = None if chosen_rule is None else _point(reached[chosen_rule])
    return CascadeData(
        stages=tuple(f"{v} ({t})" for v, t in zip(result.variants, result.tiers, strict=True)),
        curves=curves,
        oracle=_bound(result.oracle),
        cloud_only=_bound(result.cloud_only),
        target_accuracy=result.target_accuracy,
        chosen=chosen,
        chosen_rule=chosen_rule,
        samples=result.samples,
    )
