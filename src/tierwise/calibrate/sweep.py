"""Threshold calibration for the cascade: sweep each escalation rule over the held-out split.

Every variant of the cascade (e.g. zoo ``tiny`` -> ``small`` -> ``large``) runs once over the
held-out split; then, per rule, every combination of per-stage thresholds on a grid is
scored without running a model again. A request stops at the first stage whose confidence
reaches that stage's threshold (the last stage always answers) and pays every stage it
reached: one escalated from device to edge to cloud pays all three.

For each setting the sweep gives the cascade's accuracy, the escalation rate past each stage
(as a fraction of all requests) and the cost per 1M inferences. The report gives the
cheapest setting reaching the accuracy target (relative to the last, largest stage), and
two references:

- *cloud-only*: every request on the last stage alone;
- *oracle*: a perfect router that escalates a request only while the current stage's answer
  is wrong, and keeps a request no stage gets right on the first stage (escalating it buys
  nothing). No threshold setting is as accurate for less.

Costs are USD per inference per stage, by the stage's tier kind (``device``, ``edge``,
``cloud``) or variant name; :data:`DEFAULT_USD_PER_INFERENCE` when not given, or derived
from a fleet spec with :func:`tierwise.calibrate.costs.spec_usd_per_inference`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.calibrate.result import (
    Bound,
    CalibrationResult,
    RuleCalibration,
    Setting,
    Sweep,
)
from tierwise.errors import ConfigError
from tierwise.escalation.rules import EscalationRule, Outputs, make_rule

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_USD_PER_INFERENCE",
    "Bound",
    "CalibrationResult",
    "RuleCalibration",
    "Setting",
    "Sweep",
    "calibrate",
    "calibrate_outputs",
    "oracle_bound",
    "run_variants",
    "sweep_rule",
    "threshold_grid",
]

#: USD per inference by tier kind when no costs are given: device compute is already paid
#: for; an edge box ~$0.03 and a cloud GPU pool ~$0.20 per 1,000 inferences.
DEFAULT_USD_PER_INFERENCE: dict[str, float] = {"device": 0.0, "edge": 3e-5, "cloud": 2e-4}
#: Rules swept by default (the classifier rules; ``detector`` needs per-box scores).
DEFAULT_RULES: tuple[str, ...] = ("max_prob", "margin", "entropy")

_MAX_STAGES = 4
_CHUNK_SETTINGS = 4096


def threshold_grid(steps: int = 101) -> np.ndarray:
    """Thresholds to sweep: ``steps`` evenly over [0, 1], plus a finer tail near 1.0 (steps of
    0.002 above 0.9 and 1 - 1e-2 ... 1 - 1e-5), where confident models put most rows."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError("steps", "a whole number >= 2", steps)
    tail = np.concatenate([np.linspace(0.9, 1.0, 51), 1.0 - np.geomspace(1e-2, 1e-5, 16)])
    return np.unique(np.round(np.concatenate([np.linspace(0.0, 1.0, steps), tail]), 12))


def sweep_rule(
    rule: EscalationRule,
    outputs: Sequence[Outputs],
    correct: Sequence[np.ndarray],
    usd_per_inference: Sequence[float],
    grid: np.ndarray,
) -> Sweep:
    """Score every combination of per-stage thresholds from ``grid`` (stages - 1 of them).

    ``outputs[i]`` are stage i's outputs on every row, ``correct[i]`` whether its answer is
    right; no model runs here.
    """
    stages = len(correct)
    conf = [np.asarray(rule.confidence(outputs[i]), dtype=np.float64) for i in range(stages - 1)]
    ok = [np.asarray(c, dtype=bool) for c in correct]
    samples = ok[0].shape[0]
    for i, c in enumerate(conf):
        if c.shape != (samples,):
            raise ConfigError(f"outputs[{i}]", f"{samples} rows", list(c.shape))
    axes = np.meshgrid(*([np.asarray(grid, dtype=np.float64)] * (stages - 1)), indexing="ij")
    thresholds = np.stack([a.ravel() for a in axes], axis=1)
    n = thresholds.shape[0]
    right = np.zeros(n, dtype=np.int64)
    rates = np.zeros((n, stages - 1))
    cost = np.zeros(n)
    for start in range(0, n, _CHUNK_SETTINGS):
        block = thresholds[start : start + _CHUNK_SETTINGS]
        reach = np.ones((block.shape[0], samples), dtype=bool)
        for i in range(stages):
            cost[start : start + block.shape[0]] += usd_per_inference[i] * reach.mean(axis=1)
            if i < stages - 1:
                escalated = reach & (conf[i][np.newaxis, :] < block[:, i : i + 1])
                rates[start : start + block.shape[0], i] = escalated.mean(axis=1)
            else:
                escalated = np.zeros_like(reach)
            right[start : start + block.shape[0]] += (reach & ~escalated & ok[i]).sum(axis=1)
            reach = escalated
    return Sweep(
        rule=rule.label,
        thresholds=thresholds,
        correct=right,
        samples=samples,
        escalation_rates=rates,
        cost_usd_per_million=cost * 1e6,
    )


def oracle_bound(correct: Sequence[np.ndarray], usd_per_inference: Sequence[float]) -> Bound:
    """The perfect router: each row stops at the first stage that answers it right, or at the
    first stage when none does."""
    ok = np.stack([np.asarray(c, dtype=bool) for c in correct])  # [stages, rows]
    solvable = ok.any(axis=0)
    stop = np.where(solvable, ok.argmax(axis=0), 0)
    stages = ok.shape[0]
    reached = [float((stop >= i).mean()) for i in range(stages)]
    cost = sum(usd_per_inference[i] * reached[i] for i in range(stages))
    return Bound(
        accuracy=float(solvable.mean()),
        cost_usd_per_million=cost * 1e6,
        escalation_rates=tuple(reached[1:]),
    )


def _stage_costs(
    variants: Sequence[str], tiers: Sequence[str], usd_per_inference: Mapping[str, float]
) -> tuple[float, ...]:
    out = []
    for variant, tier in zip(variants, tiers, strict=True):
        value = usd_per_inference.get(variant, usd_per_inference.get(tier))
        if value is None:
            raise ConfigError(
                "usd_per_inference",
                f"a cost for stage {variant!r} (by variant name or tier {tier!r})",
                sorted(usd_per_inference),
            )
        if isinstance(value, bool) or not np.isfinite(value) or value < 0:
            raise ConfigError(f"usd_per_inference[{tier!r}]", "a number >= 0", value)
        out.append(float(value))
    return tuple(out)


def calibrate_outputs(
    outputs: Sequence[Outputs],
    labels: np.ndarray,
    *,
    variants: Sequence[str],
    tiers: Sequence[str],
    rules: Sequence[str | EscalationRule] = DEFAULT_RULES,
    target_accuracy: float = 0.99,
    usd_per_inference: Mapping[str, float] | None = None,
    cost_source: str = "default",
    grid: np.ndarray | None = None,
    label_output: str = "label",
) -> CalibrationResult:
    """Calibrate from outputs already computed (one mapping per stage, rows aligned with
    ``labels``). ``target_accuracy`` is relative to the last stage's accuracy."""
    stages = len(outputs)
    if not 2 <= stages <= _MAX_STAGES:
        raise ConfigError("variants", f"2 to {_MAX_STAGES} stages", list(variants))
    if len(variants) != stages or len(tiers) != stages:
        raise ConfigError("variants", f"{stages} names and tiers, one per stage", list(variants))
    if isinstance(target_accuracy, bool) or not 0.0 < float(target_accuracy) <= 1.0:
        raise ConfigError("target_accuracy", "a fraction in (0, 1]", target_accuracy)
    y = np.asarray(labels)
    correct = [
        _correct(out, y, label_output, name) for out, name in zip(outputs, variants, strict=True)
    ]
    costs = _stage_costs(variants, tiers, usd_per_inference or DEFAULT_USD_PER_INFERENCE)
    grid = threshold_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or grid.min() < 0.0 or grid.max() > 1.0:
        raise ConfigError("grid", "a 1-D array of thresholds in [0, 1]", list(grid.shape))
    cloud = Bound(float(correct[-1].mean()), costs[-1] * 1e6)
    oracle = oracle_bound(correct, costs)
    target = float(target_accuracy) * cloud.accuracy
    results: dict[str, RuleCalibration] = {}
    rows: dict[str, dict[str, Any]] = {
        v: {"correct": c.astype(int).tolist(), "confidence": {}}
        for v, c in zip(variants, correct, strict=True)
    }
    for spec in rules:
        rule = make_rule(spec)
        sweep = sweep_rule(rule, outputs, correct, costs, grid)
        for variant, out in zip(variants[:-1], outputs[:-1], strict=True):
            scores = np.asarray(rule.confidence(out), dtype=np.float64)
            rows[variant]["confidence"][sweep.rule] = [float(f"{x:.9g}") for x in scores]
        chosen = sweep.cheapest(target)
        fraction = captured = None
        if chosen is not None and cloud.cost_usd_per_million > 0:
            fraction = chosen.cost_usd_per_million / cloud.cost_usd_per_million
        if chosen is not None and cloud.cost_usd_per_million > oracle.cost_usd_per_million:
            saved = cloud.cost_usd_per_million - chosen.cost_usd_per_million
            captured = saved / (cloud.cost_usd_per_million - oracle.cost_usd_per_million)
        results[sweep.rule] = RuleCalibration(
            sweep.rule, chosen, fraction, captured, tuple(sweep.frontier()), sweep
        )
    return CalibrationResult(
        variants=tuple(variants),
        tiers=tuple(tiers),
        usd_per_inference=costs,
        cost_source=cost_source,
        samples=int(y.shape[0]),
        target_accuracy_relative=float(target_accuracy),
        target_accuracy=target,
        variant_accuracy={v: float(c.mean()) for v, c in zip(variants, correct, strict=True)},
        cloud_only=cloud,
        oracle=oracle,
        rules=results,
        rows=rows,
    )


def _correct(outputs: Outputs, labels: np.ndarray, label_output: str, variant: str) -> np.ndarray:
    if label_output in outputs:
        predicted = np.asarray(outputs[label_output]).reshape(-1)
    elif "probabilities" in outputs:
        predicted = np.asarray(outputs["probabilities"]).argmax(axis=1)
    else:
        raise ConfigError(
            f"outputs of {variant!r}",
            f"a {label_output!r} or 'probabilities' tensor to score answers",
            sorted(outputs),
        )
    if predicted.shape != labels.shape:
        raise ConfigError(f"outputs of {variant!r}", f"{labels.shape[0]} rows", predicted.shape)
    return np.asarray(predicted == labels)


def run_variants(
    zoo_dir: str | Path, variants: Sequence[str]
) -> tuple[list[dict[str, np.ndarray]], np.ndarray, tuple[str, ...]]:
    """Run each variant once over the zoo's held-out split (one batch, onnxruntime CPU).

    Returns every output of every variant, the labels, and each variant's tier kind.
    """
    import onnxruntime as ort

    from tierwise.zoo import load_eval, load_zoo

    zoo = load_zoo(zoo_dir)
    known = [v.name for v in zoo.variants]
    missing = [v for v in variants if v not in known]
    if missing:
        raise ConfigError("variants", f"names from the zoo ({', '.join(known)})", missing)
    x, y = load_eval(zoo_dir)
    outputs = []
    for name in variants:
        session = ort.InferenceSession(
            str(zoo.model_path(name)), providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]
        values = session.run(names, {session.get_inputs()[0].name: x})
        outputs.append({n: np.asarray(v) for n, v in zip(names, values, strict=True)})
    return outputs, y, tuple(zoo.variant(v).tier for v in variants)


def calibrate(
    zoo_dir: str | Path,
    *,
    variants: Sequence[str] = ("tiny", "small", "large"),
    rules: Sequence[str | EscalationRule] = DEFAULT_RULES,
    target_accuracy: float = 0.99,
    usd_per_inference: Mapping[str, float] | None = None,
    cost_source: str | None = None,
    grid: np.ndarray | None = None,
) -> CalibrationResult:
    """Run the cascade's variants over the zoo's held-out split and sweep each rule.

    ``usd_per_inference`` maps tier kinds or variant names to USD per inference
    (default :data:`DEFAULT_USD_PER_INFERENCE`); ``target_accuracy`` is relative to the
    last variant's accuracy.
    """
    outputs, labels, tiers = run_variants(zoo_dir, variants)
    source = cost_source or ("given" if usd_per_inference else "default")
    result = calibrate_outputs(
        outputs,
        labels,
        variants=variants,
        tiers=tiers,
        rules=rules,
        target_accuracy=target_accuracy,
        usd_per_inference=usd_per_inference,
        cost_source=source,
        grid=grid,
    )
    # the zoo's models hold their class probabilities in ``probabilities``
    read = {"output": "probabilities", "scores": "probabilities"}
    return replace(result, variant_outputs={v: dict(read) for v in variants})
