"""What calibration returns: sweep points, per-rule outcomes and the whole result.

Plain frozen dataclasses with ``to_dict()`` (JSON-ready) for the CLI, the cascade benchmark
and the demo. See :mod:`tierwise.calibrate.sweep` for how they are computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Bound", "CalibrationResult", "RuleCalibration", "Setting", "Sweep"]


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: per-stage thresholds and what the cascade does with them."""

    thresholds: tuple[float, ...]
    accuracy: float
    escalation_rates: tuple[float, ...]  # fraction of all requests escalated past stage i
    cost_usd_per_million: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": list(self.thresholds),
            "accuracy": self.accuracy,
            "escalation_rates": list(self.escalation_rates),
            "cost_usd_per_million": self.cost_usd_per_million,
        }


@dataclass(frozen=True)
class Sweep:
    """Every setting of one rule's sweep, as arrays (one row per setting)."""

    rule: str
    thresholds: np.ndarray  # [settings, stages - 1]
    correct: np.ndarray  # [settings] rows answered right
    samples: int
    escalation_rates: np.ndarray  # [settings, stages - 1]
    cost_usd_per_million: np.ndarray  # [settings]

    @property
    def accuracy(self) -> np.ndarray:
        return np.asarray(self.correct / self.samples)

    def setting(self, index: int) -> Setting:
        return Setting(
            thresholds=tuple(float(t) for t in self.thresholds[index]),
            accuracy=float(self.correct[index] / self.samples),
            escalation_rates=tuple(float(r) for r in self.escalation_rates[index]),
            cost_usd_per_million=float(self.cost_usd_per_million[index]),
        )

    def cheapest(self, min_accuracy: float) -> Setting | None:
        """The cheapest setting with accuracy >= ``min_accuracy`` (ties: the more accurate,
        then the lower thresholds); None when no setting reaches it."""
        need = int(np.ceil(min_accuracy * self.samples - 1e-9))
        ok = np.flatnonzero(self.correct >= need)
        if ok.size == 0:
            return None
        order = np.lexsort((-self.correct[ok], self.cost_usd_per_million[ok]))
        return self.setting(int(ok[order[0]]))

    def frontier(self) -> list[Setting]:
        """The accuracy / cost Pareto front, cheapest first: each point is more accurate than
        every cheaper one."""
        order = np.lexsort((-self.correct, self.cost_usd_per_million))
        best = -1
        keep = []
        for index in order:
            if self.correct[index] > best:
                best = int(self.correct[index])
                keep.append(int(index))
        return [self.setting(i) for i in keep]


@dataclass(frozen=True)
class Bound:
    """A reference point: accuracy and cost of cloud-only or of the oracle router."""

    accuracy: float
    cost_usd_per_million: float
    escalation_rates: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "cost_usd_per_million": self.cost_usd_per_million,
            "escalation_rates": list(self.escalation_rates),
        }


@dataclass(frozen=True)
class RuleCalibration:
    """One rule's outcome: the chosen setting (None when the target is out of reach), how it
    compares with cloud-only and the oracle, and the Pareto curve."""

    rule: str
    chosen: Setting | None
    fraction_of_cloud_cost: float | None
    oracle_savings_captured: float | None
    curve: tuple[Setting, ...]
    sweep: Sweep = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "rule": self.rule,
            "reached_target": chosen is not None,
            "thresholds": None if chosen is None else list(chosen.thresholds),
            "accuracy": None if chosen is None else chosen.accuracy,
            "escalation_rates": None if chosen is None else list(chosen.escalation_rates),
            "cost_usd_per_million": None if chosen is None else chosen.cost_usd_per_million,
            "fraction_of_cloud_cost": self.fraction_of_cloud_cost,
            "oracle_savings_captured": self.oracle_savings_captured,
            "settings_swept": int(self.sweep.correct.shape[0]),
            "curve": [s.to_dict() for s in self.curve],
        }


@dataclass(frozen=True)
class CalibrationResult:
    """What calibration found, per rule, with the references it is judged against."""

    variants: tuple[str, ...]
    tiers: tuple[str, ...]  # tier kind of each stage
    usd_per_inference: tuple[float, ...]  # per stage
    cost_source: str
    samples: int
    target_accuracy_relative: float
    target_accuracy: float  # absolute: relative x the last stage's accuracy
    variant_accuracy: dict[str, float]
    cloud_only: Bound
    oracle: Bound
    rules: dict[str, RuleCalibration]
    #: per variant, the output its scores were read from and what they hold
    #: (``{"output": NAME, "scores": "probabilities" | "logits"}``); the planner copies
    #: them into the plan's cascade stages
    variant_outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: per variant, each held-out row's outcome: ``{"correct": [0|1, ...], "confidence":
    #: {rule: [...]}}`` (rows in the eval split's order; the simulator draws from them)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = self._summary()
        if self.rows:
            out["rows"] = self.rows
        return out

    def _summary(self) -> dict[str, Any]:
        return {
            "variants": list(self.variants),
            "tiers": list(self.tiers),
            "usd_per_inference": list(self.usd_per_inference),
            "cost_source": self.cost_source,
            "samples": self.samples,
            "target_accuracy_relative": self.target_accuracy_relative,
            "target_accuracy": self.target_accuracy,
            "variant_accuracy": dict(self.variant_accuracy),
            "cloud_only": self.cloud_only.to_dict(),
            "oracle": self.oracle.to_dict(),
            "rules": {name: r.to_dict() for name, r in self.rules.items()},
            "variant_outputs": {v: dict(o) for v, o in self.variant_outputs.items()},
        }
