"""What the router adds to a request: a gateway hop over HTTP, and the policy in process.

1. Gateway hop. The zoo's large model on ``tierwise serve``, and ``tierwise gateway`` in
   front of it with a plan whose workload's cascade is that one remote tier. The same
   batch-1 V2 JSON request goes to the tier server directly and through the gateway, at a
   fixed 500 requests/s each, from an open-loop generator in its own process
   (``openloop.py``: wrk holds a fixed number of requests in flight, so its offered rate
   follows the latency it measures, and wrk2 is not packaged here; the generator instead
   sends request i at start + i/500 on any idle keep-alive connection, opening more when
   all are busy). Direct and gateway phases alternate (2 s each, 6 rounds by default,
   after a warm-up) in one run, so both see the same machine. Latency runs from writing
   the request to reading the whole response; the figures from the scheduled send time
   (which also count waiting for a free connection when a server falls behind) are
   reported beside them. The hop's added latency is read from the two distributions:
   median(gateway) - median(direct) <= 1 ms and p99(gateway) - p99(direct) <= 3 ms
   (LiteLLM's proxy publishes 3.25 ms median overhead; Ray Serve 1-2 ms).
2. In process: ``Router.infer`` with a ``LocalTier`` (the zoo's tiny model in process,
   max-prob rule at threshold 0 so it always answers, before a cloud stage never called)
   against the bare ``backend.infer`` on the same input, timed in alternating blocks of
   awaited calls in one run; the median of the blocks' ratios must be <= 1.5 (on a device
   the router runs in front of every request, so its cost is judged against the model's,
   on whatever machine runs this). Reported beside it: what a route costs when the
   router computes it (``Policy.route()`` over the tier states) and when it reuses one
   (``Policy.route_key()``, the lookup key), timed with ``timeit.repeat``.

Prints one JSON line; exits 1 when a target is missed.
Usage: python benchmarks/router_overhead.py [--rate 500] [--phase-s 2] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from harness import free_port, server

from tierwise.planfile.load import load_plan
from tierwise.protocol import InferRequest
from tierwise.router.build import build_router
from tierwise.router.router import Router
from tierwise.router.types import RequestMeta
from tierwise.zoo import build_zoo, load_eval

HERE = Path(__file__).resolve().parent
WORKLOAD = "digits"
MEDIAN_TARGET_MS = 1.0
P99_TARGET_MS = 3.0
LOCAL_RATIO_TARGET = 1.5


def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"n": 0}
    p50, p90, p99, p999 = np.percentile(array, [50, 90, 99, 99.9])
    return {"n": int(array.size), "p50_ms": float(p50), "p90_ms": float(p90),
            "p99_ms": float(p99), "p999_ms": float(p999), "max_ms": float(array.max())}  # fmt: skip


def _remote_plan(path: Path, url: str) -> Path:
    path.write_text(
        f"""version: 1
tiers:
  cloud:
    kind: cloud
    region: us-east
    url: {url}
    model: large
    rtt_p50_ms: 0
    rtt_p99_ms: 1
    cost_usd_per_inference: 2.32e-5
    binary: true
    timeout_s: 5
workloads:
  {WORKLOAD}:
    privacy: public
    cascade:
      - {{tier: cloud}}
"""
    )
    return path


def _local_plan(path: Path, zoo: Path, dead_url: str) -> Path:
    """The device's tiny model in process (max_prob rule at 0: it always answers) before
    a cloud tier that is never called."""
    path.write_text(
        f"""version: 1
tiers:
  device:
    kind: device
    site: store-1
    region: us-east
    local: {{model: {zoo / "tiny" / "1" / "model.onnx"}}}
    rtt_p50_ms: 0
    rtt_p99_ms: 0
    cost_usd_per_inference: 8.34e-9
  cloud:
    kind: cloud
    region: us-east
    url: {dead_url}
    model: large
    rtt_p50_ms: 25
    rtt_p99_ms: 120
    cost_usd_per_inference: 2.32e-5
workloads:
  {WORKLOAD}:
    privacy: public
    cascade:
      - {{tier: device, rule: max_prob, threshold: 0.0}}
      - {{tier: cloud}}
"""
    )
    return path


def gateway_hop(tmp: Path, zoo: Path, args: argparse.Namespace) -> dict[str, Any]:
    repo = tmp / "repo"
    (repo / "large" / "1").mkdir(parents=True)
    (repo / "large" / "1" / "model.onnx").write_bytes(
        (zoo / "large" / "1" / "model.onnx").read_bytes()
    )
    x, _ = load_eval(zoo)
    doc = {"id": "bench", "inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32",
                                      "data": x[0].reshape(-1).tolist()}]}  # fmt: skip
    body = tmp / "body.json"
    body.write_bytes(orjson.dumps(doc))
    tier_port, gateway_port = free_port(), free_port()
    serve = [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
             "--port", str(tier_port), "--no-access-log"]  # fmt: skip
    tier_url = f"http://127.0.0.1:{tier_port}"
    plan = _remote_plan(tmp / "remote-plan.yaml", tier_url)
    gateway = [sys.executable, "-m", "tierwise", "gateway", "--plan", str(plan),
               "--port", str(gateway_port)]  # fmt: skip
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    direct = f"{tier_url}/v2/models/large/infer"
    routed = f"{gateway_url}/v2/models/{WORKLOAD}/infer"
    out_file = tmp / "openloop.json"
    with (
        server(serve, f"{tier_url}/v2/health/ready", log=tmp / "serve.log"),
        server(gateway, f"{gateway_url}/v2/health/ready", log=tmp / "gateway.log"),
    ):
        # Both paths answer the same, and the gateway's answer came from the tier server.
        a = httpx.post(direct, content=body.read_bytes(), timeout=10).json()
        b = httpx.post(routed, content=body.read_bytes(), timeout=10).json()
        same = a["outputs"] == b["outputs"] and b["parameters"]["tier"] == "cloud"
        load = [sys.executable, str(HERE / "openloop.py"), direct, routed,
                "--rate", str(args.rate), "--body", str(body), "--phase-s", str(args.phase_s),
                "--rounds", str(args.rounds), "--warmup-s", str(args.warmup_s),
                "--out", str(out_file)]  # fmt: skip
        budget_s = 2 * (args.warmup_s + args.phase_s * args.rounds) + 120
        subprocess.run(load, check=True, timeout=budget_s)
    measured = orjson.loads(out_file.read_bytes())
    result: dict[str, Any] = {"rate_per_s": args.rate, "same_answer": same,
                              "generator_overruns": measured["overruns"]}  # fmt: skip
    for label, url in (("direct", direct), ("gateway", routed)):
        m = measured[url]
        lag = m["send_lag_ms"]
        # From the scheduled send time: what an open-loop client saw, including any wait
        # for a free connection when the server fell behind (wrk2's corrected latency).
        # (A timer that fires a little early sends early: that send counts from itself.)
        scheduled = np.asarray(m["latencies_ms"]) + np.maximum(np.asarray(lag), 0.0)
        result[label] = _percentiles(m["latencies_ms"]) | {
            "from_schedule_p50_ms": float(np.percentile(scheduled, 50)) if lag else None,
            "from_schedule_p99_ms": float(np.percentile(scheduled, 99)) if lag else None,
            "errors": m["errors"], "sent": m["sent"], "achieved_rate_per_s": m["achieved_rate"],
            "connections": m["connections"],
            "send_lag_p99_ms": float(np.percentile(lag, 99)) if lag else None,
        }  # fmt: skip
    result["overhead_median_ms"] = result["gateway"]["p50_ms"] - result["direct"]["p50_ms"]
    result["overhead_p99_ms"] = result["gateway"]["p99_ms"] - result["direct"]["p99_ms"]
    return result


def _per_call_us(fn: Any, number: int, repeats: int) -> list[float]:
    return [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeats)]


def route_cost(router: Router, number: int, repeats: int) -> dict[str, Any]:
    """What a route costs the router: computed (a cache miss: tier states, spend so far,
    ``Policy.route()``) and reused (the key ``Policy.route_key()`` looks it up by)."""
    meta = RequestMeta(workload=WORKLOAD, received_s=time.time())
    policy: Any = router.policy

    def fresh() -> None:
        now_s = time.time()
        policy.route(
            meta, now_s=now_s, tiers=router.tier_states(), spent_usd=router.ledger.at(now_s)
        )

    def key() -> None:
        policy.route_key(meta, spent_usd=router.ledger.at(time.time()))

    fresh()
    computed = _per_call_us(fresh, number, repeats)
    reused = _per_call_us(key, number, repeats)
    return {"computed_us": statistics.median(computed), "reused_us": statistics.median(reused)}


async def _router_vs_backend(
    router: Router, x: np.ndarray, number: int, repeats: int
) -> dict[str, Any]:
    await router.start()
    tier = router.tiers["device"]
    backend = tier.backend  # type: ignore[attr-defined]
    request = InferRequest(inputs={"image": x})
    meta = RequestMeta(workload=WORKLOAD, received_s=time.time())
    answer = await router.infer(request, meta)
    assert answer.answered_by == "device", answer.trace
    for _ in range(number):  # warm both paths before timing
        await backend.infer(request.inputs)
        await router.infer(request, meta)
    bare, routed = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            await backend.infer(request.inputs)
        bare.append((time.perf_counter() - start) / number * 1e6)
        start = time.perf_counter()
        for _ in range(number):
            await router.infer(request, meta)
        routed.append((time.perf_counter() - start) / number * 1e6)
    await router.close()
    overhead = [r - b for r, b in zip(routed, bare, strict=True)]
    ratios = [r / b for r, b in zip(routed, bare, strict=True)]
    return {
        "router_infer_us": statistics.median(routed),
        "backend_infer_us": statistics.median(bare),
        "overhead_us": statistics.median(overhead),
        "ratio": statistics.median(ratios),
        "blocks": repeats,
        "calls_per_block": number,
    }


def in_process(tmp: Path, zoo: Path, number: int, repeats: int) -> dict[str, Any]:
    plan = load_plan(_local_plan(tmp / "local-plan.yaml", zoo, f"http://127.0.0.1:{free_port()}"))
    x, _ = load_eval(zoo)
    out = {"route": route_cost(build_router(plan), number, repeats)}
    out["router_infer_local"] = asyncio.run(
        _router_vs_backend(build_router(plan), x[:1], number // 20, repeats * 3)
    )
    return out


def evaluate(hop: dict[str, Any], local: dict[str, Any], rate: float) -> dict[str, Any]:
    checks = {
        "hop_median_le_1ms": hop["overhead_median_ms"] <= MEDIAN_TARGET_MS,
        "hop_p99_le_3ms": hop["overhead_p99_ms"] <= P99_TARGET_MS,
        "hop_same_answer": bool(hop["same_answer"]),
        "hop_no_errors": hop["direct"]["errors"] == hop["gateway"]["errors"] == 0,
        "hop_rate_held": all(
            hop[k]["achieved_rate_per_s"] >= 0.97 * rate for k in ("direct", "gateway")
        ),
        "router_infer_local_le_1.5x_backend": local["router_infer_local"]["ratio"]
        <= LOCAL_RATIO_TARGET,
    }
    return {"checks": checks, "passed": all(checks.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description="Router overhead benchmark.")
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s per path")
    parser.add_argument("--phase-s", type=float, default=2.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=6, help="direct/gateway phase pairs")
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--number", type=int, default=20_000, help="in-process calls per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        zoo = tmp / "zoo"
        build_zoo(zoo, seed=0)
        local = in_process(tmp, zoo, args.number, args.repeats)
        hop = gateway_hop(tmp, zoo, args)
    result: dict[str, Any] = {"benchmark": "router_overhead", "gateway_hop": hop,
                              "in_process": local}  # fmt: skip
    result |= evaluate(hop, local, args.rate)
    print(orjson.dumps(result).decode())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
