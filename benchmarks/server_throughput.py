"""Tier server throughput against KServe's Python ModelServer and a bare ASGI ceiling.

One run, load from wrk in its own process, batch-1 V2 JSON requests, one server process
per system (the three light-model servers measured in interleaved rounds, medians kept):

- light model (the zoo's large variant), 16 and 64 connections: tierwise >= 4x KServe's
  throughput with p99 no worse, and >= 35% of the bare ASGI endpoint;
- compute-bound model (batch-1 call >= 5 ms here): with dynamic batching >= 85% of raw
  in-process onnxruntime throughput at its best batch size, and >= 3x batching off;
- no leak: the server's RSS grows < 20 MB over 100k requests.

Prints one JSON line; exits 1 when a target is missed. Needs wrk (apt-get install wrk).
Usage: python benchmarks/server_throughput.py [--duration-s 8] [--leak-requests 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from subprocess import Popen
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from harness import WrkResult, free_port, require_wrk, rss_mib, run_wrk, server

from tierwise.bench import dense_stack_model
from tierwise.zoo import build_zoo

HERE = Path(__file__).resolve().parent
JSON_HEADERS = {"Content-Type": "application/json"}
COMPUTE = {"width": 2048, "depth": 12, "in_width": 64, "out_width": 16}
BATCHES = (1, 8, 16, 32, 64, 128)


def _body(name: str, shape: list[int]) -> bytes:
    data = np.random.default_rng(0).random(int(np.prod(shape))).round(4).tolist()
    doc = {"inputs": [{"name": name, "shape": shape, "datatype": "FP32", "data": data}]}
    return orjson.dumps(doc)


def _tierwise(repo: Path, port: int, log: Path) -> AbstractContextManager[Popen[bytes]]:
    argv = [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
            "--port", str(port), "--no-access-log"]  # fmt: skip
    return server(argv, f"http://127.0.0.1:{port}/v2/health/ready", log=log)


def _load(url: str, body: bytes, connections: int, duration_s: float) -> WrkResult:
    run_wrk(url, body, connections=connections, duration_s=1, headers=JSON_HEADERS)  # warm-up
    return run_wrk(url, body, connections=connections, duration_s=duration_s, headers=JSON_HEADERS)


def light_model(tmp: Path, duration_s: float, rounds: int) -> dict[str, Any]:
    """The three servers up side by side (idle while another is loaded), measured in
    ``rounds`` interleaved rounds so that drift on the shared machine reaches all of them
    alike; each figure is the median of its rounds."""
    zoo = tmp / "zoo"
    build_zoo(zoo, seed=0)
    repo = tmp / "light"
    (repo / "large" / "1").mkdir(parents=True)
    model = zoo / "large" / "1" / "model.onnx"
    (repo / "large" / "1" / "model.onnx").write_bytes(model.read_bytes())
    body = _body("image", [1, 8, 8])
    ports = {name: free_port() for name in ("tierwise", "kserve", "bare_asgi")}
    kserve = [sys.executable, str(HERE / "kserve_onnx_server.py"), str(model), "large",
              str(ports["kserve"])]  # fmt: skip
    bare = [sys.executable, str(HERE / "bare_asgi.py"), str(ports["bare_asgi"])]
    runs: dict[str, dict[int, list[WrkResult]]] = {n: {16: [], 64: []} for n in ports}
    with ExitStack() as stack:
        stack.enter_context(_tierwise(repo, ports["tierwise"], tmp / "tierwise.log"))
        stack.enter_context(server(kserve, f"http://127.0.0.1:{ports['kserve']}/v2/models/large/ready",
                                   log=tmp / "kserve.log"))  # fmt: skip
        stack.enter_context(server(bare, f"http://127.0.0.1:{ports['bare_asgi']}/",
                                   log=tmp / "bare.log"))  # fmt: skip
        names = list(ports)
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for connections in (16, 64):
                for name in order:
                    url = f"http://127.0.0.1:{ports[name]}/v2/models/large/infer"
                    runs[name][connections].append(_load(url, body, connections, duration_s))
    out: dict[str, Any] = {}
    for name, by_connections in runs.items():
        out[name] = {}
        for connections, results in by_connections.items():
            out[name][connections] = {
                "connections": connections,
                "rounds": len(results),
                "requests_per_s": statistics.median(r.requests_per_s for r in results),
                "p50_ms": statistics.median(r.p50_ms for r in results),
                "p99_ms": statistics.median(r.p99_ms for r in results),
                "errors": sum(r.errors for r in results),
                "all_requests_per_s": [round(r.requests_per_s, 1) for r in results],
            }
    return out


def raw_onnxruntime(model: Path) -> dict[int, float]:
    """Rows per second of onnxruntime called in-process, per batch size (one intra-op
    thread, as the server runs it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    rates = {}
    for batch in BATCHES:
        x = np.random.default_rng(1).random((batch, COMPUTE["in_width"])).astype(np.float32)
        for _ in range(2):
            session.run(None, {"x": x})
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.5:
            session.run(None, {"x": x})
            runs += 1
        rates[batch] = batch * runs / (time.perf_counter() - start)
    return rates


def compute_bound(tmp: Path, duration_s: float) -> dict[str, Any]:
    model = dense_stack_model(tmp / "compute.onnx", **COMPUTE)
    rates = raw_onnxruntime(model)
    body = _body("x", [1, COMPUTE["in_width"]])
    out: dict[str, Any] = {"batch1_ms": 1000.0 / rates[1], "raw_rows_per_s": rates}
    for label, config, connections in (
        (
            "batched",
            f"batching: {{max_batch_size: {max(BATCHES)}, max_queue_size: 1024}}\n",
            2 * max(BATCHES),
        ),
        ("unbatched", "batching: {max_batch_size: 1, max_queue_size: 1024}\n", 64),
    ):
        repo = tmp / label
        (repo / "heavy" / "1").mkdir(parents=True)
        (repo / "heavy" / "1" / "model.onnx").symlink_to(model)
        (repo / "heavy" / "config.yaml").write_text(config)
        port = free_port()
        with _tierwise(repo, port, tmp / f"{label}.log"):
            url = f"http://127.0.0.1:{port}/v2/models/heavy/infer"
            out[label] = _load(url, body, connections, duration_s).to_dict()
    return out


def leak(tmp: Path, requests: int) -> dict[str, Any]:
    repo = tmp / "light"
    body = _body("image", [1, 8, 8])
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/models/large/infer"
    with _tierwise(repo, port, tmp / "leak.log") as process:
        run_wrk(url, body, connections=16, duration_s=3, headers=JSON_HEADERS)  # warm-up
        before = rss_mib(process.pid)
        done = 0
        while done < requests:
            done += run_wrk(url, body, connections=16, duration_s=3, headers=JSON_HEADERS).requests
        after = rss_mib(process.pid)
    return {"requests": done, "rss_before_mib": before, "rss_after_mib": after,
            "rss_growth_mib": after - before}  # fmt: skip


def evaluate(light: dict[str, Any], heavy: dict[str, Any], leaked: dict[str, Any],
             leak_requests: int) -> dict[str, Any]:  # fmt: skip
    """Ratios and pass/fail for every target."""
    out: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    for c in (16, 64):
        tw, ks, bare = light["tierwise"][c], light["kserve"][c], light["bare_asgi"][c]
        out[f"light_vs_kserve_x_{c}"] = tw["requests_per_s"] / ks["requests_per_s"]
        out[f"light_of_bare_{c}"] = tw["requests_per_s"] / bare["requests_per_s"]
        checks[f"light_4x_kserve_{c}"] = out[f"light_vs_kserve_x_{c}"] >= 4.0
        checks[f"light_p99_not_worse_{c}"] = tw["p99_ms"] <= ks["p99_ms"]
        checks[f"light_35pct_of_bare_{c}"] = out[f"light_of_bare_{c}"] >= 0.35
        checks[f"light_no_errors_{c}"] = tw["errors"] == 0
    batched, unbatched = heavy["batched"], heavy["unbatched"]
    out["compute_of_raw_best"] = batched["requests_per_s"] / max(heavy["raw_rows_per_s"].values())
    out["compute_batched_vs_unbatched_x"] = batched["requests_per_s"] / unbatched["requests_per_s"]
    checks["compute_batch1_at_least_5ms"] = heavy["batch1_ms"] >= 5.0
    checks["compute_85pct_of_raw"] = out["compute_of_raw_best"] >= 0.85
    checks["compute_3x_unbatched"] = out["compute_batched_vs_unbatched_x"] >= 3.0
    checks["compute_no_errors"] = batched["errors"] == unbatched["errors"] == 0
    checks["leak_100k_requests"] = leaked["requests"] >= leak_requests
    checks["leak_under_20mib"] = leaked["rss_growth_mib"] < 20.0
    out["checks"] = checks
    out["passed"] = all(checks.values())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Tier server throughput benchmark.")
    parser.add_argument("--duration-s", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--leak-requests", type=int, default=100_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the light-model runs"
    )
    args = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        light = light_model(tmp, args.duration_s / 2, args.rounds)
        heavy = compute_bound(tmp, args.duration_s)
        leaked = leak(tmp, args.leak_requests)
    result: dict[str, Any] = {"benchmark": "server_throughput", "light": light,
                              "compute": heavy, "leak": leaked}  # fmt: skip
    result |= evaluate(light, heavy, leaked, args.leak_requests)
    print(orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS).decode())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
