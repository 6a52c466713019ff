"""The device tier in a real browser: headless Chromium (Debian's, driven by Playwright)
runs the zoo's tiny model in the page with onnxruntime-web (WASM, one thread), served by
``tierwise gateway`` from a plan whose ``digits`` workload starts on a device.

1. In-page inference, against Python onnxruntime on the same machine for the same model
   (CPU, one intra-op and one inter-op thread), on the same held-out rows one at a time.
   Both sides warm up first (``--warmup-s``: V8 compiles hot WebAssembly again, optimised,
   after its first few thousand calls), then time blocks of ``--block`` calls (the page's
   clock is coarsened to 0.1 ms, so one call cannot be timed alone there) and take the
   median of the per-call means over ``--blocks`` blocks, alternating page and Python
   blocks in one run. The page's call is tierwise-device's: input tensors made, the model
   run, every output read. Target: page p50 <= 2x Python's.
2. Cold start to first answer: a new browser profile (no HTTP cache, no Cache Storage)
   opens ``/device/``; from navigation start through loading the runtime, fetching,
   checking (sha256) and warming the model, to the first answer of a held-out row. Median
   of ``--cold-runs``. Target: <= 1.5 s.
3. Device share: the share of the held-out rows the page answers without leaving it, at
   the plan's threshold, against the Python router's share for the same rows (routed
   through the same plan, escalations answered by ``tierwise serve`` with the zoo's large
   model). Target: within 1 point.

Prints one JSON line; exits 1 when a target is missed.
Usage: python benchmarks/device_browser.py [--rows 500] [--blocks 40] [--block 25]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import yaml
from harness import free_port, server

from tierwise.planfile.load import load_plan
from tierwise.protocol import InferRequest
from tierwise.router.build import build_router
from tierwise.router.types import RequestMeta
from tierwise.webdevice import WEB_DIR
from tierwise.zoo import build_zoo, load_eval, load_zoo

INPAGE_RATIO_TARGET = 2.0
COLD_START_TARGET_MS = 1500.0
SHARE_TARGET_POINTS = 1.0
THRESHOLD = 0.9
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip

PAGE_BLOCK = """async ([row, calls]) => {
  const tier = window.tierwise.tier;
  const inputs = { image: { data: Float32Array.from(row), dims: [1, 8, 8] } };
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await tier.run(tier.session, tier.settings, inputs);
  return (performance.now() - t0) / calls;
}"""
PAGE_SHARE = """async ([rows]) => {
  const tier = window.tierwise.tier;
  let local = 0;
  for (const row of rows) {
    const r = await tier.local({ image: { data: Float32Array.from(row), dims: [1, 8, 8] } });
    if (!r.escalate) local += 1;
  }
  return local;
}"""
FIRST_ANSWER = """async ([row]) => {
  const t0 = performance.now();
  await window.tierwise.tier.infer({ image: { data: Float32Array.from(row), dims: [1, 8, 8] } });
  return window.tierwise.readyAtMs + (performance.now() - t0);
}"""


def _plan(path: Path, tiny: Path, cloud_url: str) -> Path:
    plan = {
        "version": 1,
        "tiers": {
            "phone": {"kind": "device", "site": "s1", "region": "r1", "rtt_p50_ms": 0,
                      "rtt_p99_ms": 0, "cost_usd_per_inference": 0, "local": {"model": str(tiny)}},
            "cloud": {"kind": "cloud", "region": "r1", "rtt_p50_ms": 20, "rtt_p99_ms": 80,
                      "cost_usd_per_inference": 1e-5, "url": cloud_url, "model": "large"},
        },
        "workloads": {"digits": {"privacy": "public", "cascade": [
            {"tier": "phone", "rule": "max_prob", "threshold": THRESHOLD}, {"tier": "cloud"}]}},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(plan))
    return path


def _wait_ready(page: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        state = page.evaluate(
            "() => ({ready: window.tierwise?.ready === true, error: window.tierwise?.error})"
        )
        if state["error"]:
            raise RuntimeError(f"the device page failed: {state['error']}")
        if state["ready"]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the device page did not get ready")
        time.sleep(0.005)


def _python_block(session: ort.InferenceSession, row: np.ndarray, calls: int) -> float:
    feeds = {"image": row[np.newaxis]}
    t0 = time.perf_counter()
    for _ in range(calls):
        session.run(None, feeds)
    return (time.perf_counter() - t0) * 1000.0 / calls


def _router_share(plan_path: Path, x: np.ndarray) -> float:
    plan = load_plan(plan_path)
    router = build_router(plan, seed=7)

    async def run() -> int:
        await router.start()
        local = 0
        try:
            for row in x:
                answer = await router.infer(
                    InferRequest(inputs={"image": row[np.newaxis]}), RequestMeta("digits")
                )
                local += answer.answered_by == "phone"
        finally:
            await router.close()
        return local

    return asyncio.run(run()) / len(x)


def _open(browser: Any, url: str) -> tuple[Any, Any]:
    context = browser.new_context()  # a new profile: no HTTP cache, no Cache Storage
    page = context.new_page()
    page.goto(f"{url}/device/?workload=digits")
    _wait_ready(page)
    return context, page


def _measure(
    browser: Any, url: str, session: ort.InferenceSession, x: np.ndarray, args: Any
) -> tuple[list[float], str, list[float], list[float], float]:
    """Cold starts, the backend, page and Python block means (ms), the page's share."""
    cold = []
    for _ in range(args.cold_runs):
        context, page = _open(browser, url)
        cold.append(page.evaluate(FIRST_ANSWER, [x[0].ravel().tolist()]))
        context.close()
    context, page = _open(browser, url)
    backend = page.evaluate("() => window.tierwise.tier.runtime.backend")
    # both sides warm first: V8 compiles hot WebAssembly again, optimised, after its
    # first calls, and timing that would time the compiler, not the model
    warm_row = x[0].ravel().tolist()
    until = time.monotonic() + args.warmup_s
    while time.monotonic() < until:
        page.evaluate(PAGE_BLOCK, [warm_row, 200])
        _python_block(session, x[0], 200)
    page_ms, python_ms = [], []
    for i in range(args.blocks):
        row = x[i % len(x)]
        page_ms.append(page.evaluate(PAGE_BLOCK, [row.ravel().tolist(), args.block]))
        python_ms.append(_python_block(session, row, args.block))
    page_share = page.evaluate(PAGE_SHARE, [[r.ravel().tolist() for r in x]]) / len(x)
    context.close()
    return cold, backend, page_ms, python_ms, page_share


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed: run scripts/system-deps.sh test", file=sys.stderr)
        return 2
    if not (WEB_DIR / "vendor" / "ort.wasm.min.mjs").is_file():
        print("the device page is not built: run make device-web", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="tierwise-device-bench-") as tmp:
        root = Path(tmp)
        build_zoo(root / "zoo", seed=0)
        tiny = load_zoo(root / "zoo").model_path("tiny")
        x, _ = load_eval(root / "zoo")
        x = x[: args.rows]
        cloud_port, port = free_port(), free_port()
        cloud = f"http://127.0.0.1:{cloud_port}"
        url = f"http://127.0.0.1:{port}"
        plan = _plan(root / "plan.yaml", tiny, cloud)
        serve = [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(root / "zoo"),
                 "--port", str(cloud_port)]  # fmt: skip
        argv = [sys.executable, "-m", "tierwise", "gateway", "--plan", str(plan),
                "--port", str(port)]  # fmt: skip
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        session = ort.InferenceSession(str(tiny), so, providers=["CPUExecutionProvider"])
        with (
            server(serve, f"{cloud}/v2/health/ready", log=root / "serve.log"),
            server(argv, f"{url}/v2/health/ready", log=root / "gateway.log"),
        ):
            router_share = _router_share(plan, x)  # before Playwright's loop holds the thread
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium, headless=True, args=CHROMIUM_ARGS
                )
                cold, backend, page_ms, python_ms, page_share = _measure(
                    browser, url, session, x, args
                )
                browser.close()
    page_p50 = statistics.median(page_ms)
    python_p50 = statistics.median(python_ms)
    ratio = page_p50 / python_p50
    cold_ms = statistics.median(cold)
    share_gap = abs(page_share - router_share) * 100.0
    result = {
        "benchmark": "device_browser",
        "backend": backend,
        "rows": len(x),
        "inpage_p50_ms": round(page_p50, 4),
        "python_onnxruntime_p50_ms": round(python_p50, 4),
        "inpage_ratio": round(ratio, 2),
        "inpage_ratio_target": INPAGE_RATIO_TARGET,
        "cold_start_to_first_answer_ms": round(cold_ms, 1),
        "cold_start_runs_ms": [round(c, 1) for c in cold],
        "cold_start_target_ms": COLD_START_TARGET_MS,
        "device_share_page": round(page_share, 4),
        "device_share_router": round(router_share, 4),
        "device_share_gap_points": round(share_gap, 2),
        "device_share_target_points": SHARE_TARGET_POINTS,
    }
    missed = [
        name
        for name, bad in (
            ("inpage_ratio", ratio > INPAGE_RATIO_TARGET),
            ("cold_start", cold_ms > COLD_START_TARGET_MS),
            ("device_share", share_gap > SHARE_TARGET_POINTS),
        )
        if bad
    ]
    result["missed"] = missed
    print(orjson.dumps(result).decode())
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
