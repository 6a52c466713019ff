"""The cascade at its calibrated thresholds, run for real over the held-out split.

1. Build the zoo (seed 0) into a temp dir and calibrate every default escalation rule
   (``tierwise.calibrate.sweep``) over the held-out split with the example plan's prices
   (``examples/plans/digits.yaml``: device $8.34e-9, edge $4.82e-6, cloud $2.32e-5 per
   inference, which that file derives from ``examples/retail-shelf.yaml``'s cost model) for
   an accuracy of 99.5% of cloud-only; keep the rule whose setting is cheapest.
2. Start the edge (zoo ``small``) and cloud (zoo ``large``) tiers as ``tierwise serve``
   processes on loopback and run every held-out image, one request at a time, through a
   ``tierwise.Client`` built from the example plan (its ``digits`` workload, the device's
   ``tiny`` model in process) with the calibrated rule and thresholds; then every image
   through the cloud tier alone (a one-stage workload of the same plan). A request pays
   every tier it reached, as calibration counts it (the traces' cost).
3. Report accuracy and cost per 1M inferences beside cloud-only, the share of the oracle's
   savings captured (oracle: calibration's perfect router at the same prices), per-tier
   share of requests, p50/p95/p99 end-to-end latency, and how often the real run answered
   on the tier calibration predicted.

4. A second task, so that the cascade's economics are not a property of the digits zoo
   alone (``tasks.byom``): the model family a user brings in the README's "Bring your own
   model" (``examples/byom/export.py``: scikit-learn's breast-cancer data, a logistic
   regression on three measurements and an MLP on all 30, exported with skl2onnx, outputs
   ``diagnosis`` and ``scores``), built into a temp dir. Both variants run over its
   held-out half with onnxruntime; calibration (``calibrate_outputs``, the rules reading
   ``scores``, at the same prices: ``small`` on the device, ``large`` in the cloud) gives
   its cheapest setting reaching the accuracy target, reported as the cascade's accuracy
   and cost against ``large`` alone and the share of the oracle's savings captured. These
   figures come from the sweep over the held-out rows (no live replay).

Targets: accuracy >= 99.5% of cloud-only at cost per 1M <= 25% of cloud-only, and >= 80%
of the oracle's savings captured; on the second task, accuracy >= 99.5% of its strongest
model alone at a lower cost. Prints one JSON line; exits 1 when a target is missed.
Usage: python benchmarks/cascade.py [--seed 0] [--target-accuracy 0.995]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import yaml
from harness import free_port, server

from tierwise.calibrate.sweep import (
    CalibrationResult,
    calibrate,
    calibrate_outputs,
    run_variants,
)
from tierwise.escalation.rules import Margin, MaxProbability, NormalizedEntropy, make_rule
from tierwise.planfile.load import load_plan
from tierwise.router.client import Client
from tierwise.zoo import build_zoo, load_eval

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLAN = ROOT / "examples" / "plans" / "digits.yaml"
WORKLOAD = "digits"
CLOUD_ONLY = "digits-cloud-only"
VARIANTS = {"device": "tiny", "edge": "small", "cloud": "large"}
COST_TARGET = 0.25
CAPTURE_TARGET = 0.80
BYOM_EXPORT = ROOT / "examples" / "byom" / "export.py"
#: The second task's cascade: tier kind (for its price) -> variant, cheapest first.
BYOM_STAGES = {"device": "small", "cloud": "large"}


def example_costs() -> dict[str, float]:
    """USD per inference by tier kind, as the example plan prices its tiers."""
    tiers = yaml.safe_load(EXAMPLE_PLAN.read_text())["tiers"]
    return {tiers[name]["kind"]: float(tiers[name]["cost_usd_per_inference"]) for name in VARIANTS}


def best_rule(result: CalibrationResult) -> tuple[str, tuple[float, ...]] | None:
    """The rule (and thresholds) whose setting reaching the target costs least."""
    reached = [r for r in result.rules.values() if r.chosen is not None]
    if not reached:
        return None
    best = min(reached, key=lambda r: r.chosen.cost_usd_per_million)  # type: ignore[union-attr]
    assert best.chosen is not None
    return best.rule, best.chosen.thresholds


def write_plan(
    path: Path, zoo: Path, urls: dict[str, str], rule: str, thresholds: tuple[float, ...]
) -> Path:
    """The example plan's tiers and ``digits`` workload, pointed at this run's servers and
    models, with the calibrated rule and thresholds."""
    doc = yaml.safe_load(EXAMPLE_PLAN.read_text())
    tiers = doc["tiers"]
    tiers["device"]["local"] = {"model": str(zoo / VARIANTS["device"] / "1" / "model.onnx")}
    for name in ("edge", "cloud"):
        tiers[name]["url"] = urls[name]
        tiers[name].pop("auth_header_env", None)  # loopback servers ask for no credentials
    workload = doc["workloads"][WORKLOAD]
    workload["cascade"] = [
        {"tier": "device", "rule": rule, "threshold": thresholds[0]},
        {"tier": "edge", "rule": rule, "threshold": thresholds[1]},
        {"tier": "cloud"},
    ]
    cloud_only = {k: v for k, v in workload.items() if k not in ("cascade", "description")}
    cloud_only["cascade"] = [{"tier": "cloud"}]
    doc["workloads"] = {WORKLOAD: workload, CLOUD_ONLY: cloud_only}
    doc.pop("price_schedule", None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def predicted_tiers(zoo: Path, rule: str, thresholds: tuple[float, ...]) -> list[str]:
    """The tier calibration expects to answer each held-out row (batch outputs)."""
    outputs, _, _ = run_variants(zoo, list(VARIANTS.values()))
    scorer = make_rule(rule)
    names = list(VARIANTS)
    stop = np.full(outputs[0]["label"].shape[0], len(names) - 1)
    undecided = np.ones_like(stop, dtype=bool)
    for stage, threshold in enumerate(thresholds):
        sure = undecided & (scorer.confidence(outputs[stage]) >= threshold)
        stop[sure] = stage
        undecided &= ~sure
    return [names[i] for i in stop]


def _latency(values: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


async def replay(plan: Path, x: np.ndarray, y: np.ndarray, warmup: int) -> dict[str, Any]:
    """Every image through the cascade, then through the cloud tier alone."""
    out: dict[str, Any] = {}
    async with Client(plan) as client:
        for workload in (WORKLOAD, CLOUD_ONLY):
            for image in x[:warmup]:
                await client.infer({"image": image[None]}, workload=workload)
        for label, workload in (("cascade", WORKLOAD), ("cloud_only", CLOUD_ONLY)):
            tiers, latencies, costs = [], [], []
            correct = degraded = 0
            for image, truth in zip(x, y, strict=True):
                started = time.perf_counter()
                result = await client.infer({"image": image[None]}, workload=workload)
                latencies.append((time.perf_counter() - started) * 1000.0)
                tiers.append(result.tier or "-")
                costs.append(result.trace.cost_usd)
                degraded += result.degraded
                correct += int(result.outputs["label"][0] == truth)
            out[label] = {
                "requests": len(tiers),
                "accuracy": correct / len(tiers),
                "cost_usd_per_million": float(np.mean(costs)) * 1e6,
                "tier_share": {t: tiers.count(t) / len(tiers) for t in dict.fromkeys(VARIANTS)},
                "degraded": degraded,
                "latency": _latency(latencies),
                "answered_by": tiers,
            }
    return out


def evaluate(run: dict[str, Any], calibration: CalibrationResult) -> dict[str, Any]:
    cascade, cloud = run["cascade"], run["cloud_only"]
    oracle = calibration.oracle.cost_usd_per_million
    accuracy_ratio = cascade["accuracy"] / cloud["accuracy"]
    cost_ratio = cascade["cost_usd_per_million"] / cloud["cost_usd_per_million"]
    room = cloud["cost_usd_per_million"] - oracle
    captured = (cloud["cost_usd_per_million"] - cascade["cost_usd_per_million"]) / room
    checks = {
        "accuracy_ge_99_5pct_of_cloud": accuracy_ratio >= calibration.target_accuracy_relative,
        "cost_le_25pct_of_cloud": cost_ratio <= COST_TARGET,
        "oracle_savings_captured_ge_80pct": captured >= CAPTURE_TARGET,
        "nothing_degraded": cascade["degraded"] == cloud["degraded"] == 0,
    }
    return {
        "accuracy_of_cloud_only": accuracy_ratio,
        "cost_of_cloud_only": cost_ratio,
        "oracle_cost_usd_per_million": oracle,
        "oracle_savings_captured": captured,
        "checks": checks,
        "passed": all(checks.values()),
    }


def _calibration_summary(result: CalibrationResult) -> dict[str, Any]:
    return {
        "usd_per_inference": dict(zip(result.tiers, result.usd_per_inference, strict=True)),
        "variant_accuracy": result.variant_accuracy,
        "target_accuracy": result.target_accuracy,
        "cloud_only": result.cloud_only.to_dict(),
        "oracle": result.oracle.to_dict(),
        "rules": {
            name: {k: v for k, v in r.to_dict().items() if k != "curve"}
            for name, r in result.rules.items()
        },
    }


def _byom_export() -> Any:
    """``examples/byom/export.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("byom_export", BYOM_EXPORT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def byom_task(out: Path, seed: int, target: float, costs: dict[str, float]) -> dict[str, Any]:
    """The cascade's economics on the README's bring-your-own-model family (module docs)."""
    export = _byom_export()
    export.build(out, seed)
    with np.load(out / "eval.npz") as data:
        x, y = data[export.INPUT], data["labels"]
    outputs = []
    for variant in BYOM_STAGES.values():
        path = out / "models" / variant / "1" / "model.onnx"
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        values = session.run(names, {export.INPUT: x})
        outputs.append(dict(zip(names, values, strict=True)))
    calibration = calibrate_outputs(
        outputs,
        y,
        variants=tuple(BYOM_STAGES.values()),
        tiers=tuple(BYOM_STAGES),
        rules=[MaxProbability("scores"), Margin("scores"), NormalizedEntropy("scores")],
        target_accuracy=target,
        usd_per_inference=costs,
        cost_source=f"{EXAMPLE_PLAN.relative_to(ROOT)}",
        label_output="diagnosis",
    )
    strongest = calibration.cloud_only
    result: dict[str, Any] = {
        "source": f"{BYOM_EXPORT.relative_to(ROOT)}",
        "samples": calibration.samples,
        "stages": BYOM_STAGES,
        "usd_per_inference": dict(
            zip(calibration.tiers, calibration.usd_per_inference, strict=True)
        ),
        "variant_accuracy": calibration.variant_accuracy,
        "strongest_alone": strongest.to_dict(),
        "oracle": calibration.oracle.to_dict(),
    }
    chosen = best_rule(calibration)
    if chosen is None:
        checks = {"thresholds_reach_target": False}
        return result | {"checks": checks, "passed": False}
    rule = calibration.rules[chosen[0]]
    assert rule.chosen is not None
    setting = rule.chosen
    escalated = setting.escalation_rates[0]
    accuracy_ratio = setting.accuracy / strongest.accuracy
    cost_ratio = setting.cost_usd_per_million / strongest.cost_usd_per_million
    checks = {
        "accuracy_ge_target_of_strongest": accuracy_ratio >= target - 1e-12,
        "cost_below_strongest_alone": cost_ratio < 1.0,
    }
    return result | {
        "rule": rule.rule,
        "thresholds": list(setting.thresholds),
        "cascade": {
            "accuracy": setting.accuracy,
            "cost_usd_per_million": setting.cost_usd_per_million,
            "tier_share": dict(zip(BYOM_STAGES, (1.0 - escalated, escalated), strict=True)),
        },
        "accuracy_of_strongest": accuracy_ratio,
        "cost_of_strongest": cost_ratio,
        "oracle_cost_usd_per_million": calibration.oracle.cost_usd_per_million,
        "oracle_savings_captured": rule.oracle_savings_captured,
        "checks": checks,
        "passed": all(checks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Cascade benchmark on the held-out split.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--target-accuracy", type=float, default=0.995, help="accuracy relative to cloud-only"
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per path")
    args = parser.parse_args()
    costs = example_costs()
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        zoo = tmp / "zoo"
        build_zoo(zoo, seed=args.seed)
        calibration = calibrate(
            zoo,
            variants=tuple(VARIANTS.values()),
            target_accuracy=args.target_accuracy,
            usd_per_inference=costs,
            cost_source=f"{EXAMPLE_PLAN.relative_to(ROOT)}",
        )
        result: dict[str, Any] = {"benchmark": "cascade", "seed": args.seed,
                                  "calibration": _calibration_summary(calibration)}  # fmt: skip
        byom = byom_task(tmp / "byom", args.seed, args.target_accuracy, costs)
        result["tasks"] = {"byom": byom}
        chosen = best_rule(calibration)
        if chosen is None:
            result |= {"checks": {"thresholds_reach_target": False}, "passed": False}
            print(orjson.dumps(result).decode())
            return 1
        rule, thresholds = chosen
        urls = {}
        for tier in ("edge", "cloud"):
            variant = VARIANTS[tier]
            repo = tmp / f"repo-{variant}"
            (repo / variant / "1").mkdir(parents=True)
            (repo / variant / "1" / "model.onnx").write_bytes(
                (zoo / variant / "1" / "model.onnx").read_bytes()
            )
            port = free_port()
            urls[tier] = f"http://127.0.0.1:{port}"
            argv = [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
                    "--port", str(port), "--no-access-log"]  # fmt: skip
            stack.enter_context(
                server(argv, f"{urls[tier]}/v2/health/ready", log=tmp / f"{tier}.log")
            )
        plan = write_plan(tmp / "plan.yaml", zoo, urls, rule, thresholds)
        load_plan(plan)  # fail here, with the file and field, if the plan is wrong
        x, y = load_eval(zoo)
        run = asyncio.run(replay(plan, x, y, args.warmup))
        predicted = predicted_tiers(zoo, rule, thresholds)
    answered = run["cascade"].pop("answered_by")
    run["cloud_only"].pop("answered_by")
    agree = sum(a == p for a, p in zip(answered, predicted, strict=True))
    result |= {
        "rule": rule,
        "thresholds": list(thresholds),
        "cascade": run["cascade"],
        "cloud_only": run["cloud_only"],
        "same_tier_as_calibration": agree / len(answered),
    }
    result |= evaluate(run, calibration)
    result["passed"] = result["passed"] and byom["passed"]
    print(orjson.dumps(result).decode())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
