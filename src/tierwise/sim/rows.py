"""What each held-out row did on each variant, from a calibration file: the simulator's
escalations and answers drawn from measured rows, not from rates.

``tierwise calibrate`` keeps, per variant, whether each row of the eval split was
answered right and each rule's confidence on it (``rows:`` in its JSON). A simulated
request is one of those rows (drawn at random, or the row a replay sent): a stage passes
it on exactly when the row's confidence under the stage's rule is below the stage's
threshold, as the router decides, so escalation rates, their correlation from stage to
stage, and the accuracy come out as the calibration measured them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tierwise.errors import ConfigError
from tierwise.planfile.schema import Plan

__all__ = ["CalibrationRows", "RowOutcomes", "load_calibration_rows", "workload_rows"]


@dataclass(frozen=True)
class RowOutcomes:
    """One workload's cascade on every row: ``escalates[r, i]`` (stage i passes row r
    on) and ``correct[r, i]`` (stage i answers row r right)."""

    escalates: np.ndarray
    correct: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.escalates.shape[0])


@dataclass(frozen=True)
class CalibrationRows:
    """Per variant: each row's correctness and each rule's confidences."""

    source: str
    correct: dict[str, np.ndarray]
    confidence: dict[str, dict[str, np.ndarray]]

    @property
    def rows(self) -> int:
        return next(iter(self.correct.values())).size if self.correct else 0


def load_calibration_rows(path: Path) -> CalibrationRows:
    """The per-row outcomes of a ``tierwise calibrate --json`` file; ConfigError naming
    the file and field when it has none or they disagree."""
    source = str(path)
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError("--calibration", "a readable calibration file", source) from exc
    except orjson.JSONDecodeError as exc:
        raise ConfigError(source, "JSON from `tierwise calibrate --json`", str(exc)) from exc
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, dict) or not rows:
        raise ConfigError(
            f"{source}: rows", "per-row outcomes (written by tierwise calibrate)", None
        )
    correct: dict[str, np.ndarray] = {}
    confidence: dict[str, dict[str, np.ndarray]] = {}
    count: int | None = None
    for variant, entry in rows.items():
        where = f"{source}: rows.{variant}"
        if not isinstance(entry, dict) or not isinstance(entry.get("correct"), list):
            raise ConfigError(where, "{correct: [0|1, ...], confidence: {rule: [...]}}", entry)
        correct[variant] = _array(entry["correct"], f"{where}.correct", bool)
        count = correct[variant].size if count is None else count
        scores: Any = entry.get("confidence", {})
        if not isinstance(scores, dict):
            raise ConfigError(f"{where}.confidence", "{rule: [confidence per row]}", scores)
        confidence[variant] = {
            rule: _array(v, f"{where}.confidence.{rule}", float) for rule, v in scores.items()
        }
        for name, array in [("correct", correct[variant]), *confidence[variant].items()]:
            if array.size != count:
                raise ConfigError(f"{where}.{name}", f"{count} rows, as every variant", array.size)
    return CalibrationRows(source, correct, confidence)


def _array(values: Any, where: str, dtype: type) -> np.ndarray:
    try:
        array: np.ndarray = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ConfigError(where, "a list of numbers", str(exc)) from exc
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(where, "a non-empty list, one entry per row", list(array.shape))
    return array


def workload_rows(plan: Plan, workload: str, table: CalibrationRows) -> RowOutcomes | None:
    """``workload``'s cascade on every row of ``table``; None when a stage's variant was
    not calibrated (the simulator then draws from the plan's rates)."""
    stages = plan.workloads[workload].cascade
    escalates, correct = [], []
    for i, stage in enumerate(stages):
        tier = plan.tiers[stage.tier]
        variant = tier.variant or tier.model or ""
        if variant not in table.correct:
            return None
        correct.append(table.correct[variant])
        if i == len(stages) - 1 or stage.rule is None or stage.threshold is None:
            escalates.append(np.zeros(table.rows, dtype=bool))  # answers whatever it says
            continue
        scores = table.confidence[variant].get(stage.rule)
        if scores is None:
            raise ConfigError(
                f"{table.source}: rows.{variant}.confidence",
                f"the confidences of rule {stage.rule!r} (the plan's stage {stage.tier})",
                sorted(table.confidence[variant]),
            )
        escalates.append(scores < stage.threshold)
    return RowOutcomes(np.stack(escalates, axis=1), np.stack(correct, axis=1))
