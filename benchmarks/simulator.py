"""Simulator benchmark: how fast ``tierwise simulate`` runs against the live policy
deciding requests one call at a time, side by side in one run, and a day of the retail
example grown to 10,000 devices.

1. **Policy, one call at a time**: the live :class:`~tierwise.router.policy.Policy`
   routes fresh requests of the retail plan's workloads one ``route`` call each, with
   the tiers' state and spend as the simulator passes them (the ceiling of any simulator
   that asks the policy per request).
2. **Simulator**: ``simulate_files`` on the same plan for three busy hours (arrivals,
   routing, cascades, queues, links and tallies included; an hour is served on a worker
   thread while the next is routed), simulated requests per wall second, after a short
   run has compiled the batcher loop (Numba compiles once per process). Target: >= 10x
   the policy's rate; the absolute rate is reported beside it.
3. **10,000 devices x 24 hours**: the retail example's traffic scaled from its 320 shelf
   cameras to 10,000, a whole simulated day; its wall time and request count.
4. **Fidelity**: the demo's fleet live on this machine (tier servers behind links with
   the plan's round trips) against the simulator, the same seeded requests at a light
   load, near the edge box's capacity and through a partition of the cloud's link
   (:mod:`tierwise.demo.fidelity`). Targets per workload and level: p50 and p99 within
   10% of the live measurement, tier shares within 2 percentage points, cost per 1M
   within 5%.

The retail plan is written here from ``examples/retail-shelf.yaml`` (one router tier
per spec tier and variant, the edge box's two models as two tiers), with host profiles
of the four variants built in this script (no model files exist for them): the timing
figures are illustrative, the work the simulator does for them is not.

Prints one JSON line; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from tierwise.router.policy import Policy
from tierwise.router.types import RequestMeta
from tierwise.sim import Scenario, SimSettings, simulate_files
from tierwise.sim.tiers import tier_states

ROOT = Path(__file__).resolve().parent.parent
RETAIL = ROOT / "examples" / "retail-shelf.yaml"
CAMERAS = 320  # shelf-cam node_count in the example
TARGET_RATIO = 10.0


def _batch(size: int, p50_ms: float) -> dict[str, Any]:
    p99 = p50_ms * 2.5
    mean = p50_ms * 1.3
    return {
        "batch_size": size, "runs": 100, "mean_ms": mean, "p50_ms": p50_ms,
        "p95_ms": p50_ms * 1.8, "p99_ms": p99, "throughput_per_s": size * 1000 / mean,
    }  # fmt: skip


def write_retail(folder: Path) -> Path:
    """The retail plan and its profiles in ``folder``; the plan's path."""
    profiles = {
        "schema": "tierwise.profiles/2", "created_at": "2026-12-01T00:00:00Z",
        "host": {"label": "reference", "cpu_cores": 4}, "tiers": [],
        "settings": {"runs": 100, "warmup_runs": 10, "max_seconds_per_batch": 1.0},
        "profiles": [
            {"model": model, "variant": variant, "provider": "CPUExecutionProvider",
             "source": "onnxruntime", "batches": [_batch(1, ms), _batch(8, ms * 4)]}
            for model, variant, ms in (("shelf-detector", "nano-int8", 30.0),
                                       ("shelf-detector", "small-int8", 45.0),
                                       ("product-reid", "base-int8-cpu", 60.0),
                                       ("product-reid", "base-fp16", 20.0))
        ],
    }  # fmt: skip
    (folder / "profiles.json").write_bytes(orjson.dumps(profiles))

    def remote(spec_tier: str, variant: str, port: int, rtt: tuple[float, float],
               usd: float, kind: str) -> dict[str, Any]:  # fmt: skip
        return {"kind": kind, "spec_tier": spec_tier, "variant": variant, "model": variant,
                "url": f"http://{spec_tier}.example:{port}", "rtt_p50_ms": rtt[0],
                "rtt_p99_ms": rtt[1], "cost_usd_per_inference": usd, "timeout_s": 2.0}  # fmt: skip

    plan = {
        "version": 1,
        "spec": str(RETAIL),
        "tiers": {
            "shelf-cam": {"kind": "device", "spec_tier": "shelf-cam", "variant": "nano-int8",
                          "local": {"model": "nano-int8.onnx"}, "rtt_p50_ms": 0,
                          "rtt_p99_ms": 0, "cost_usd_per_inference": 2e-7},
            "store-edge-small-int8": remote("store-edge", "small-int8", 9001, (3, 20), 4e-6,
                                            "edge"),
            "store-edge-base-int8-cpu": remote("store-edge", "base-int8-cpu", 9002, (3, 20),
                                               6e-6, "edge"),
            "reid-cloud": remote("reid-cloud", "base-fp16", 9003, (28, 140), 9e-5, "cloud"),
        },
        "workloads": {
            "shelf-detect": {
                "privacy": "personal", "residency": "site", "deadline_ms": 500,
                "cascade": [{"tier": "shelf-cam", "rule": "max_prob", "threshold": 0.8},
                            {"tier": "store-edge-small-int8"}],
                "expected": {"reach": [1.0, 0.35], "accuracy": 0.94},
            },
            "product-reid": {
                "privacy": "public", "deadline_ms": 1200,
                "cascade": [{"tier": "store-edge-base-int8-cpu", "rule": "max_prob",
                             "threshold": 0.7}, {"tier": "reid-cloud"}],
                "expected": {"reach": [1.0, 0.25], "accuracy": 0.9},
            },
        },
    }  # fmt: skip
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def policy_rate(plan_path: Path, calls: int) -> float:
    """Fresh requests routed per second, one ``Policy.route`` call each."""
    result = simulate_files(plan_path, spec_path=None, profiles=[], scenario_path=None,
                            settings=SimSettings(hours=0.01), keep_requests=False)  # fmt: skip
    fleet = result.fleet
    policy = Policy(fleet.plan)
    states = tier_states(fleet, Scenario(), 0.0)
    spent = dict.fromkeys(fleet.plan.workloads, 0.0)
    names = list(fleet.workloads)
    started = time.perf_counter()
    for i in range(calls):
        at = 3600.0 + i * 0.001
        policy.route(RequestMeta(names[i % len(names)], received_s=at), now_s=at,
                     tiers=states, spent_usd=spent)  # fmt: skip
    return calls / (time.perf_counter() - started)


def simulator_rate(plan_path: Path, hours: float, scale: float) -> tuple[float, int, float]:
    """(simulated requests per wall second, requests, wall seconds)."""
    settings = SimSettings(hours=hours, start_hour=8, traffic_scale=scale)
    started = time.perf_counter()
    result = simulate_files(plan_path, spec_path=None, profiles=[], scenario_path=None,
                            settings=settings, keep_requests=False)  # fmt: skip
    wall = time.perf_counter() - started
    requests = int(result.summary["requests"])
    return requests / wall, requests, wall


def fidelity(seconds: float) -> list[dict[str, Any]]:
    """The demo fleet's fidelity check, one compact row per level and workload."""
    from tierwise.demo.fidelity import run_fidelity
    from tierwise.demo.settings import DemoSettings

    with tempfile.TemporaryDirectory(prefix="tierwise-fidelity-") as tmp:
        settings = DemoSettings(zoo_dir=Path(tmp) / "zoo", work_dir=Path(tmp) / "demo")
        result = run_fidelity(settings, duration_s=seconds)
    rows = []
    for row in result.rows:
        p, m = row.predicted, row.measured
        rows.append({
            "level": row.level, "workload": row.workload, "requests": row.requests,
            "p50_ms": [round(p.p50_ms, 3), round(m.p50_ms, 3)],
            "p99_ms": [round(p.p99_ms, 3), round(m.p99_ms, 3)],
            "share_pct": [{k: round(100 * v, 2) for k, v in side.share.items()}
                          for side in (p, m)],
            "p50_by_kind_ms": [{k: None if v is None else round(v, 3)
                                for k, v in side.p50_by_kind_ms.items()} for side in (p, m)],
            "usd_per_million": [float(f"{p.usd_per_million:.4g}"),
                                float(f"{m.usd_per_million:.4g}")],
            "within": row.within, "ok": row.ok,
        })  # fmt: skip
    return rows


def fidelity_apart(seconds: float) -> list[dict[str, Any]]:
    """:func:`fidelity` in a fresh interpreter: the live replay's latencies are not those
    of a process that has just simulated a hundred million requests (its heap, its
    threads)."""
    argv = [sys.executable, __file__, "--fidelity-only", "--fidelity-seconds", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"the fidelity check failed:\n{done.stderr[-4000:]}")
    rows: list[dict[str, Any]] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="policy calls timed")
    parser.add_argument("--hours", type=float, default=3.0, help="hours of the timed run")
    parser.add_argument("--devices", type=int, default=10_000, help="devices of the day run")
    parser.add_argument("--day-hours", type=float, default=24.0, help="hours of the day run")
    parser.add_argument("--fidelity-seconds", type=float, default=30.0,
                        help="seconds of traffic per fidelity level")  # fmt: skip
    parser.add_argument("--skip-fidelity", action="store_true", help="time the simulator only")
    parser.add_argument("--fidelity-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fidelity_only:  # run by the benchmark itself, in a fresh process
        print(orjson.dumps(fidelity(args.fidelity_seconds)).decode())
        return 0
    with tempfile.TemporaryDirectory(prefix="tierwise-sim-bench-") as tmp:
        plan = write_retail(Path(tmp))
        scale = args.devices / CAMERAS
        simulator_rate(plan, 0.02, scale)  # compiles the batcher loop (once per process)
        per_call = policy_rate(plan, args.calls)
        rate, requests, wall = simulator_rate(plan, args.hours, scale)
        per_call_again = policy_rate(plan, args.calls)  # the faster of the two is the ceiling
        ceiling = max(per_call, per_call_again)
        _, day_requests, day_wall = simulator_rate(plan, args.day_hours, scale)
    ratio = rate / ceiling
    misses = [] if ratio >= TARGET_RATIO else [f"ratio {ratio:.2f} < {TARGET_RATIO}"]
    checked = None if args.skip_fidelity else fidelity_apart(args.fidelity_seconds)
    for r in checked or []:
        if not r["ok"]:
            missed = ", ".join(k for k, ok in r["within"].items() if not ok)
            misses.append(f"fidelity {r['level']}/{r['workload']}: {missed}")
    print(orjson.dumps({
        "benchmark": "simulator",
        "policy_calls_per_s": round(ceiling),
        "simulated_requests_per_s": round(rate),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "timed_requests": requests,
        "timed_wall_s": round(wall, 2),
        "day": {"devices": args.devices, "hours": args.day_hours, "requests": day_requests,
                "wall_s": round(day_wall, 1),
                "requests_per_s": round(day_requests / day_wall)},
        "fidelity": checked,
        "misses": misses,
    }).decode())  # fmt: skip
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
