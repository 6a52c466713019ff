"""What watching costs, and whether drift is caught.

Throughput: two tier server processes serve the zoo's large model from the same
repository, whose version folder holds the model's drift reference. One runs with
everything a fleet watches on: the per-batch histograms, busy time, energy accounting
(estimated from a power model, or measured where RAPL is readable) and the drift monitor
fed with its sample of the batches (``drift_max_rows_per_s``). The other runs with
``metrics: false`` and ``--no-energy``: request counts only. Load comes from wrk in its
own process (keep-alive connections, batch-1 V2 JSON); each round runs the two as
A B B A (which opens alternates between rounds), its ratio is full's requests over
off's, and the figure is the median of the rounds' ratios. With two or more CPUs wrk
runs on CPU 0 and the servers on the others. After the runs the full server's
``/metrics`` must show energy and a drift window, so the work was really done.

Drift: a monitor with the default settings (PSI 0.1 warn / 0.2 alert) on the zoo's small
model, fed rows drawn from the zoo's held-out images: for each seed, one stream with a
shift (corruption severity raised, or the class mix swapped to a few digits) must alert
within 500 sampled requests, and one unshifted stream is watched window by window for
false alarms.

Targets: full >= 95% of off; shift flagged within 500 rows in >= 95% of seeded runs;
false alarms <= 1% of windows. Prints one JSON line; exits 1 when a target is missed.
Needs wrk (apt-get install wrk).
Usage: python benchmarks/telemetry_cost.py [--duration-s 2] [--rounds 8] [--seeds 40]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import WrkResult, digits_request, free_port, pinning, require_wrk, run_wrk, server

from tierwise.zoo import build_zoo

JSON_HEADERS = {"Content-Type": "application/json"}
THROUGHPUT_TARGET = 0.95
DETECTION_TARGET = 0.95
FALSE_ALARM_LIMIT = 0.01
DETECTION_ROWS = 500
#: the shifts injected, each over every seed
SHIFTS = ("severity", "class_mix")


def _series(text: str, name: str) -> list[float]:
    """Values of every sample of ``name`` in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            out.append(float(line.rsplit(" ", 1)[1]))
    return out


def throughput(
    tmp: Path, zoo: Path, duration_s: float, rounds: int, connections: int
) -> dict[str, Any]:
    repo = tmp / "repo"
    shutil.copytree(zoo / "large", repo / "large")
    if not (repo / "large" / "1" / "reference.json").is_file():
        raise RuntimeError("the zoo's large model has no drift reference to monitor with")
    off_config = tmp / "off.yaml"
    off_config.write_text("metrics: false\n")
    ports = {"full": free_port(), "off": free_port()}
    client_pin, server_pin = pinning()
    serve = [*server_pin, sys.executable, "-m", "tierwise", "serve", "--no-access-log"]
    argv = {
        "full": [*serve, "--model-repo", str(repo), "--port", str(ports["full"]), "--tier",
                 "edge", "--idle-watts", "3", "--active-watts", "5"],
        "off": [*serve, "--model-repo", str(repo), "--config", str(off_config), "--port",
                str(ports["off"]), "--no-energy"],
    }  # fmt: skip
    body = digits_request()
    runs: dict[str, list[WrkResult]] = {"full": [], "off": []}
    ratios: list[float] = []
    with ExitStack() as stack:
        for name, command in argv.items():
            url = f"http://127.0.0.1:{ports[name]}/v2/health/ready"
            stack.enter_context(server(command, url, log=tmp / f"{name}.log"))

        def run(name: str, seconds: float) -> WrkResult:
            url = f"http://127.0.0.1:{ports[name]}/v2/models/large/infer"
            return run_wrk(url, body, connections=connections, duration_s=seconds,
                           headers=JSON_HEADERS, pin=client_pin)  # fmt: skip

        for name in argv:  # warm both once
            run(name, 1)
        for round_ in range(rounds):
            # A B B A: a machine that speeds up or slows down during the round moves both
            # sides alike; which side opens alternates between rounds
            a, b = ("full", "off") if round_ % 2 else ("off", "full")
            got: dict[str, list[WrkResult]] = {"full": [], "off": []}
            for name in (a, b, b, a):
                got[name].append(run(name, duration_s))
            for name, results in got.items():
                runs[name].extend(results)
            full_rps = sum(r.requests_per_s for r in got["full"])
            ratios.append(full_rps / max(sum(r.requests_per_s for r in got["off"]), 1e-9))
        full_metrics = httpx.get(f"http://127.0.0.1:{ports['full']}/metrics", timeout=10).text
        off_metrics = httpx.get(f"http://127.0.0.1:{ports['off']}/metrics", timeout=10).text
    out: dict[str, Any] = {}
    for name, results in runs.items():
        out[name] = {
            "requests_per_s": statistics.median(r.requests_per_s for r in results),
            "p50_ms": statistics.median(r.p50_ms for r in results),
            "p99_ms": statistics.median(r.p99_ms for r in results),
            "errors": sum(r.errors for r in results),
            "all_requests_per_s": [round(r.requests_per_s, 1) for r in results],
        }
    out["pair_ratios"] = [round(r, 3) for r in ratios]
    out["pinned"] = bool(client_pin)
    out["full_energy_joules"] = sum(_series(full_metrics, "tierwise_energy_joules_total"))
    out["full_drift_window_rows"] = sum(_series(full_metrics, "tierwise_drift_window_rows"))
    out["off_energy_series"] = len(_series(off_metrics, "tierwise_energy_joules_total"))
    return out


def drift(zoo: Path, seeds: int) -> dict[str, Any]:
    """Detection of injected shifts and false alarms on unshifted traffic, over seeds."""
    from tierwise.zoo import detection_trial, false_alarm_share

    caught: dict[str, list[int | None]] = {shift: [] for shift in SHIFTS}
    alarms = windows = 0
    for seed in range(seeds):
        for shift in SHIFTS:
            caught[shift].append(detection_trial(zoo, "small", seed=seed, shift=shift))
        fired, seen = false_alarm_share(zoo, "small", seed=seed, rows=2000)
        alarms += fired
        windows += seen
    trials = [rows for found in caught.values() for rows in found]
    detected = [rows for rows in trials if rows is not None and rows <= DETECTION_ROWS]
    return {
        "seeds": seeds,
        "shifts": list(SHIFTS),
        "detection_rate": len(detected) / len(trials),
        "rows_to_alert_median": statistics.median(detected) if detected else None,
        "rows_to_alert_max": max(detected) if detected else None,
        "by_shift": {
            shift: sum(r is not None and r <= DETECTION_ROWS for r in found) / len(found)
            for shift, found in caught.items()
        },
        "false_alarm_windows": alarms,
        "windows": windows,
        "false_alarm_rate": alarms / max(windows, 1),
    }


def evaluate(runs: dict[str, Any], drifts: dict[str, Any]) -> dict[str, Any]:
    ratio = statistics.median(runs["pair_ratios"])
    checks = {
        "full_95pct_of_off": ratio >= THROUGHPUT_TARGET,
        "no_errors": runs["full"]["errors"] == 0 and runs["off"]["errors"] == 0,
        "full_accounts_energy_and_drift": runs["full_energy_joules"] > 0
        and runs["full_drift_window_rows"] > 0,
        "off_accounts_no_energy": runs["off_energy_series"] == 0,
        "shift_flagged_95pct_within_500": drifts["detection_rate"] >= DETECTION_TARGET,
        "false_alarms_at_most_1pct": drifts["false_alarm_rate"] <= FALSE_ALARM_LIMIT,
    }
    return {"full_of_off": ratio, "checks": checks, "passed": all(checks.values())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Telemetry cost and drift detection benchmark.")
    parser.add_argument("--duration-s", type=float, default=2.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=8, help="A B B A rounds")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--seeds", type=int, default=40, help="seeded drift runs per shift")
    args = parser.parse_args(argv)
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        zoo = tmp / "zoo"
        build_zoo(zoo, seed=0)
        drifts = drift(zoo, args.seeds)
        runs = throughput(tmp, zoo, args.duration_s, args.rounds, args.connections)
    result: dict[str, Any] = {"benchmark": "telemetry_cost", "connections": args.connections,
                              "throughput": runs, "drift": drifts}  # fmt: skip
    result |= evaluate(runs, drifts)
    print(orjson.dumps(result).decode())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
