"""The demo's cascade: edge and cloud tier servers on loopback, the device's model in
process, the held-out split replayed through :class:`tierwise.Client`, compared with
sending everything to the cloud."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tierwise.errors import DemoError
from tierwise.router.calibrate import CalibrationResult, calibrate
from tierwise.router.client import Client
from tierwise.router.plan_load import load_plan
from tierwise.zoo import load_eval

__all__ = [
    "USD_PER_INFERENCE",
    "DemoError",
    "ReplaySummary",
    "calibrate_for_demo",
    "cascade_plan",
    "replay",
    "tier_servers",
]

#: USD per inference on each tier: the costs of examples/plans/digits.yaml, computed with
#: tierwise's cost model from examples/retail-shelf.yaml (Pi 5 store box, g4dn cloud pool).
USD_PER_INFERENCE = {"device": 8.34e-9, "edge": 4.82e-6, "cloud": 2.32e-5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tier_servers(zoo_dir: Path, work_dir: Path) -> Iterator[dict[str, str]]:
    """``tierwise serve`` processes for the edge (small) and cloud (large) tiers; yields
    their URLs and stops them on exit."""
    processes: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for tier, variant in (("edge", "small"), ("cloud", "large")):
            repo = work_dir / f"{tier}-repo" / variant / "1"
            repo.mkdir(parents=True, exist_ok=True)
            target = repo / "model.onnx"
            target.write_bytes((zoo_dir / variant / "1" / "model.onnx").read_bytes())
            port = _free_port()
            argv = [sys.executable, "-m", "tierwise", "serve", "--model-repo",
                    str(repo.parents[1]), "--port", str(port)]  # fmt: skip
            with (work_dir / f"{tier}.log").open("wb") as log:
                # our own interpreter and arguments built here: nothing untrusted
                processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
            urls[tier] = f"http://127.0.0.1:{port}"
        for tier, url in urls.items():
            _wait_ready(url, tier, work_dir / f"{tier}.log")
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(url: str, tier: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise DemoError(f"the {tier} tier server at {url} did not start; see {log}")


def cascade_plan(
    path: Path, zoo_dir: Path, urls: dict[str, str], calibration: CalibrationResult
) -> tuple[Path, str, tuple[float, ...]]:
    """Write a plan with two workloads: ``digits`` (the cascade at the cheapest calibrated
    thresholds) and ``digits-cloud`` (cloud only). Returns the plan, rule and thresholds."""
    chosen = [
        (r.chosen.cost_usd_per_million, name, r.chosen.thresholds)
        for name, r in calibration.rules.items()
        if r.chosen is not None
    ]
    if not chosen:
        raise DemoError("no escalation rule reaches the calibration target")
    _, rule, thresholds = min(chosen)
    tiny = zoo_dir.resolve() / "tiny" / "1" / "model.onnx"
    tiers = f"""
  device:
    kind: device
    site: store-1
    region: us-east
    local: {{model: "{tiny}"}}
    rtt_p50_ms: 0
    rtt_p99_ms: 0
    cost_usd_per_inference: {USD_PER_INFERENCE["device"]}
  edge:
    kind: edge
    site: store-1
    region: us-east
    url: {urls["edge"]}
    model: small
    rtt_p50_ms: 3
    rtt_p99_ms: 20
    cost_usd_per_inference: {USD_PER_INFERENCE["edge"]}
    binary: true
  cloud:
    kind: cloud
    region: us-east
    url: {urls["cloud"]}
    model: large
    rtt_p50_ms: 25
    rtt_p99_ms: 120
    cost_usd_per_inference: {USD_PER_INFERENCE["cloud"]}
    binary: true
    timeout_s: 2.0"""
    path.write_text(
        f"""# written by tierwise demo: thresholds from tierwise calibrate ({rule})
version: 1
tiers:{tiers}
workloads:
  digits:
    privacy: public
    cascade:
      - {{tier: device, rule: {rule}, threshold: {thresholds[0]}}}
      - {{tier: edge, rule: {rule}, threshold: {thresholds[1]}}}
      - {{tier: cloud}}
  digits-cloud:
    privacy: public
    cascade:
      - {{tier: cloud}}
"""
    )
    return path, rule, thresholds


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """How one workload fared over the replayed split."""

    workload: str
    requests: int
    accuracy: float
    share: dict[str, float]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    usd_per_million: float
    degraded: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _replay_one(
    client: Client,
    workload: str,
    x: np.ndarray,
    y: np.ndarray,
    step: Callable[[], None],
) -> ReplaySummary:
    latencies, costs, tiers, correct, degraded = [], [], [], 0, 0
    for image, label in zip(x, y, strict=True):
        started = time.perf_counter()
        result = await client.infer({"image": image[None]}, workload=workload)
        latencies.append((time.perf_counter() - started) * 1000.0)
        costs.append(result.trace.cost_usd)
        tiers.append(result.tier or "-")
        correct += int(result.outputs["label"][0] == label)
        degraded += int(result.degraded)
        step()
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return ReplaySummary(
        workload=workload,
        requests=len(y),
        accuracy=correct / len(y),
        share={t: tiers.count(t) / len(tiers) for t in ("device", "edge", "cloud")},
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        usd_per_million=float(np.mean(costs)) * 1e6,
        degraded=degraded,
    )


def replay(
    plan_path: Path, zoo_dir: Path, *, step: Callable[[], None] = lambda: None
) -> list[ReplaySummary]:
    """Replay the held-out split through the cascade and through cloud only."""
    x, y = load_eval(zoo_dir)

    async def run() -> list[ReplaySummary]:
        async with Client(load_plan(plan_path)) as client:
            return [
                await _replay_one(client, workload, x, y, step)
                for workload in ("digits", "digits-cloud")
            ]

    return asyncio.run(run())


def calibrate_for_demo(zoo_dir: Path) -> CalibrationResult:
    """Thresholds reaching 99.5% of the cloud model's accuracy at the demo's prices."""
    return calibrate(zoo_dir, target_accuracy=0.995, usd_per_inference=USD_PER_INFERENCE)
