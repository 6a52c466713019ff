"""The cascade section of a report from a calibration: a
:class:`~tierwise.calibrate.sweep.CalibrationResult`, or its JSON form (what
``tierwise calibrate --json`` prints and ``tierwise plan --calibration`` reads)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from tierwise.calibrate.result import CalibrationResult
from tierwise.errors import ReportError
from tierwise.report.data import CascadeCurve, CascadeData, ChosenPoint, CurvePoint

__all__ = [
    "cascade_from_calibration",
    "choose_on_curve",
    "load_calibration_json",
    "read_json_object",
]

_NOT_CALIBRATION = "not a calibration from tierwise calibrate --json ({})"


def read_json_object(path: str | Path, what: str, source: str) -> dict[str, Any]:
    """A JSON file holding one object (``what``, written by ``source``) as a mapping;
    ReportError naming the file when it is unreadable, not JSON or not an object."""
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ReportError(f"cannot read the {what}: {exc.strerror}", path=str(path)) from exc
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"not JSON: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict):
        raise ReportError(f"expected a JSON object from {source}", path=str(path))
    return doc


def load_calibration_json(path: str | Path) -> dict[str, Any]:
    """A calibration JSON file as a mapping (ReportError when unreadable)."""
    return read_json_object(path, "calibration", "tierwise calibrate --json")


def _point(doc: Mapping[str, Any]) -> CurvePoint:
    return CurvePoint(
        float(doc["cost_usd_per_million"]),
        float(doc["accuracy"]),
        tuple(float(t) for t in doc.get("thresholds") or ()),
    )


def _parse(doc: Mapping[str, Any], rule: str | None) -> CascadeData:
    rules: Mapping[str, Any] = doc["rules"]
    curves = tuple(
        CascadeCurve(name, tuple(_point(s) for s in entry["curve"]))
        for name, entry in rules.items()
        if entry.get("curve")
    )
    if rule is not None and rule not in rules:
        raise ReportError(f"the calibration has no rule {rule!r} (it has {sorted(rules)})")
    reached = {
        name: _point(entry)
        for name, entry in rules.items()
        if entry.get("reached_target") and entry.get("cost_usd_per_million") is not None
    }
    if rule is not None:
        picked = rule if rule in reached else None
    else:
        picked = min(reached, key=lambda n: reached[n].cost_usd_per_million, default=None)
    chosen = () if picked is None else (ChosenPoint(f"target ({picked})", picked, reached[picked]),)
    tiers = doc.get("tiers") or [""] * len(doc["variants"])
    return CascadeData(
        stages=tuple(
            f"{v} ({t})" if t else str(v) for v, t in zip(doc["variants"], tiers, strict=True)
        ),
        curves=curves,
        oracle=_point(doc["oracle"]),
        cloud_only=_point(doc["cloud_only"]),
        target_accuracy=float(doc["target_accuracy"]),
        chosen=chosen,
        samples=int(doc.get("samples", 0)),
        cost_source=str(doc.get("cost_source", "")),
    )


def cascade_from_calibration(
    result: CalibrationResult | Mapping[str, Any],
    *,
    rule: str | None = None,
    source: str = "calibration",
) -> CascadeData:
    """Every rule's accuracy / cost front, the oracle bound and cloud only.

    The chosen point is the one calibration picked for its target with ``rule`` when
    given, else with the cheapest rule reaching the target; none when no rule reaches it.
    ``source`` names the calibration in errors (a file).
    """
    doc = result.to_dict() if isinstance(result, CalibrationResult) else result
    try:
        return _parse(doc, rule)
    except KeyError as exc:
        raise ReportError(_NOT_CALIBRATION.format(f"no {exc.args[0]!r}"), path=source) from exc
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise ReportError(_NOT_CALIBRATION.format(exc), path=source) from exc


def choose_on_curve(
    cascade: CascadeData, label: str, rule: str, thresholds: Sequence[float]
) -> CascadeData:
    """``cascade`` with one more chosen point: the point of ``rule``'s curve whose
    thresholds are nearest ``thresholds`` (a plan's cascade). Unchanged when the rule has
    no curve or the thresholds have another length."""
    curve = next((c for c in cascade.curves if c.rule == rule), None)
    wanted = tuple(float(t) for t in thresholds)
    candidates = (
        [] if curve is None else [p for p in curve.points if len(p.thresholds) == len(wanted)]
    )
    if not candidates:
        return cascade
    nearest = min(candidates, key=lambda p: math.dist(p.thresholds, wanted))
    return replace(cascade, chosen=(*cascade.chosen, ChosenPoint(label, rule, nearest)))
