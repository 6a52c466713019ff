"""Cascade curves for the planner, read from ``tierwise calibrate --json`` output.

A calibration (:class:`~tierwise.calibrate.sweep.CalibrationResult`) sweeps each
escalation rule over the held-out split for one cascade of variants, cheapest first. The
planner needs, per rule, the settings it may run: thresholds, the accuracy they give, and
the fraction of all requests escalated past each stage. It takes the Pareto curve of each
rule, and the setting calibration chose for its own target.

A calibration also records, per variant, the output its scores were read from and what
they hold (``variant_outputs``: ``{"output": NAME, "scores": "probabilities" |
"logits"}``); a plan's cascade stages carry them (``output:``, ``scores:``) so the router
reads what calibration read.

A calibration names variants, not a model: it applies to every workload whose model has
all its variants and that lists a tier for each stage. :func:`check_calibrations` makes
one that applies to no workload an error (a typo in a variant name would otherwise drop
the cascade without a word).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tierwise.errors import PlanError
from tierwise.spec import FleetSpec, ModelSpec
from tierwise.spec.messages import format_path

__all__ = [
    "CascadeCurve",
    "CurvePoint",
    "ScoreOutput",
    "check_calibrations",
    "curves_from_result",
    "load_calibration",
]


@dataclass(frozen=True)
class CurvePoint:
    """One setting of a rule: a threshold per stage but the last, the accuracy, and the
    fraction of all requests escalated past each stage but the last."""

    rule: str
    thresholds: tuple[float, ...]
    accuracy: float
    escalation_rates: tuple[float, ...]
    chosen: bool = False

    @property
    def reach(self) -> tuple[float, ...]:
        """The fraction of requests that reach each stage (1 for the first)."""
        return (1.0, *self.escalation_rates)


@dataclass(frozen=True)
class ScoreOutput:
    """The output a variant's scores were read from, and what they hold."""

    output: str
    scores: Literal["probabilities", "logits"] = "probabilities"


@dataclass(frozen=True)
class CascadeCurve:
    """The settings calibration found for one cascade of variants (cheapest first), and
    per variant the output its scores were read from (when the calibration says)."""

    variants: tuple[str, ...]
    points: tuple[CurvePoint, ...]
    source: str
    outputs: Mapping[str, ScoreOutput] = field(default_factory=dict)

    def candidates(self, min_accuracy: float | None) -> list[CurvePoint]:
        """Settings to consider: every point reaching ``min_accuracy``, or, without one,
        the setting calibration chose for each rule."""
        if min_accuracy is None:
            return [p for p in self.points if p.chosen]
        return [p for p in self.points if p.accuracy >= min_accuracy - 1e-12]


class _Setting(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thresholds: list[float]
    accuracy: float = Field(ge=0, le=1)
    escalation_rates: list[float]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rule: str
    thresholds: list[float] | None = None
    accuracy: float | None = None
    escalation_rates: list[float] | None = None
    curve: list[_Setting] = Field(default_factory=list)


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")

    output: str = Field(min_length=1)
    scores: Literal["probabilities", "logits"] = "probabilities"


class _Calibration(BaseModel):
    model_config = ConfigDict(extra="ignore")

    variants: list[str] = Field(min_length=2)
    rules: dict[str, _Rule]
    variant_outputs: dict[str, _Output] = Field(default_factory=dict)


def _point(rule: str, setting: _Setting, stages: int, chosen: bool, where: str) -> CurvePoint:
    if len(setting.thresholds) != stages - 1 or len(setting.escalation_rates) != stages - 1:
        raise PlanError(where, f"{stages - 1} thresholds and escalation rates per setting")
    rates = tuple(float(r) for r in setting.escalation_rates)
    if any(not 0 <= r <= 1 for r in rates) or list(rates) != sorted(rates, reverse=True):
        raise PlanError(where, "escalation rates in [0, 1], not increasing", list(rates))
    return CurvePoint(rule, tuple(setting.thresholds), setting.accuracy, rates, chosen)


def _curve(doc: _Calibration, source: str) -> CascadeCurve:
    stages = len(doc.variants)
    points: list[CurvePoint] = []
    for name, rule in doc.rules.items():
        for i, setting in enumerate(rule.curve):
            where = f"{source}: rules.{name}.curve[{i}]"
            points.append(_point(rule.rule, setting, stages, False, where))
        if rule.thresholds is not None and rule.accuracy is not None and rule.escalation_rates:
            chosen = _Setting(
                thresholds=rule.thresholds,
                accuracy=rule.accuracy,
                escalation_rates=rule.escalation_rates,
            )
            points.append(_point(rule.rule, chosen, stages, True, f"{source}: rules.{name}"))
    unknown = sorted(set(doc.variant_outputs) - set(doc.variants))
    if unknown:
        raise PlanError(
            f"{source}: variant_outputs", f"entries for the variants {doc.variants}", unknown
        )
    outputs = {v: ScoreOutput(o.output, o.scores) for v, o in doc.variant_outputs.items()}
    return CascadeCurve(tuple(doc.variants), tuple(points), source, outputs)


def load_calibration(path: str | os.PathLike[str]) -> CascadeCurve:
    """The cascade curve in a ``tierwise calibrate --json`` file; PlanError naming the file
    and field when it cannot be used."""
    file = os.fspath(path)
    try:
        data = orjson.loads(Path(file).read_bytes())
    except OSError as exc:
        raise PlanError(file, "a readable calibration file", exc.strerror or str(exc)) from exc
    except orjson.JSONDecodeError as exc:
        raise PlanError(file, "JSON from `tierwise calibrate --json`", str(exc)) from exc
    try:
        doc = _Calibration.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PlanError(f"{file}: {format_path(err['loc'])}", str(err["msg"])) from exc
    return _curve(doc, file)


def curves_from_result(result: object, source: str = "calibration") -> CascadeCurve:
    """The cascade curve of a :class:`~tierwise.calibrate.sweep.CalibrationResult`."""
    to_dict = getattr(result, "to_dict", None)
    if to_dict is None:
        raise PlanError("calibration", "a CalibrationResult", type(result).__name__)
    return _curve(_Calibration.model_validate(to_dict()), source)


def _closest_model(spec: FleetSpec, variants: Sequence[str]) -> ModelSpec | None:
    """The model of ``spec`` that has the most of ``variants`` (the first on a tie)."""
    best: tuple[int, ModelSpec] | None = None
    for model in spec.models.values():
        count = sum(v in model.variants for v in variants)
        if best is None or count > best[0]:
            best = (count, model)
    return None if best is None else best[1]


def _unknown_variant(curve: CascadeCurve, model: ModelSpec, index: int) -> PlanError:
    name = curve.variants[index]
    known = list(model.variants)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return PlanError(
        f"{curve.source}: variants[{index}]",
        f"a variant of model {model.name!r} of the spec ({', '.join(known)})",
        f"{name!r}{hint}",
    )


def check_calibrations(spec: FleetSpec, curves: Sequence[CascadeCurve]) -> None:
    """PlanError for a calibration that no workload of ``spec`` can use: one naming a
    variant that the spec's models lack (naming the file, the variant, the known ones and
    the closest), or whose model no workload runs on as many tiers as it has stages."""
    for curve in curves:
        model = _closest_model(spec, curve.variants)
        if model is None:
            raise PlanError("models", "at least one model to apply a calibration to")
        for i, name in enumerate(curve.variants):
            if name not in model.variants:
                raise _unknown_variant(curve, model, i)
        users = [w for w in spec.workloads.values() if w.model == model.name]
        stages = len(curve.variants)
        if not any(len(w.tiers) >= stages for w in users):
            listed = ", ".join(f"{w.name!r} lists {len(w.tiers)}" for w in users)
            raise PlanError(
                f"{curve.source}: variants",
                f"a workload of model {model.name!r} that lists a tier for each of the"
                f" calibration's {stages} stages ({', '.join(curve.variants)})",
                f"{listed or 'no workload runs it'}",
            )
