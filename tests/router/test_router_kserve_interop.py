"""Interop: a KServe Python ModelServer (``benchmarks/kserve_onnx_server.py``) as the cloud
tier. The server runs the zoo's large model in its own process; ``RemoteTier`` and the
``Client`` talk to it over loopback exactly as they talk to ``tierwise serve``."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from server_helpers import free_port
from tierwise.protocol import InferRequest
from tierwise.router.client import Client
from tierwise.router.tiers import RemoteTier
from tierwise.zoo import load_eval

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("kserve") is None, reason="kserve is not installed"
)

KSERVE_SERVER = Path(__file__).resolve().parents[2] / "benchmarks" / "kserve_onnx_server.py"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
THRESHOLD = 0.9


class KServeProcess:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log


@pytest.fixture(scope="module")
def kserve(
    shared_zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KServeProcess]:
    """The zoo's large model on KServe's ModelServer, on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("kserve") / "kserve.log"
    model = shared_zoo_dir / "large" / "1" / "model.onnx"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(KSERVE_SERVER), str(model), "large", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the KServe server exited early:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/v2/models/large/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the KServe server was not ready in {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield KServeProcess(process, url, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _direct(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    session = _session(path)
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: x})
    return dict(zip(names, values, strict=True))


@pytest.mark.parametrize("binary", [None, False, True])
async def test_remote_tier_matches_onnxruntime(
    kserve: KServeProcess, shared_zoo_dir: Path, binary: bool | None
) -> None:
    x, _ = load_eval(shared_zoo_dir)
    batch = x[:16]
    expected = _direct(shared_zoo_dir / "large" / "1" / "model.onnx", batch)
    tier = RemoteTier("cloud", kserve.url, "large", binary=binary, timeout_s=10)
    try:
        response = await tier.infer(InferRequest(inputs={"image": batch}, id="k1"), timeout_s=10)
        single = await tier.infer(InferRequest(inputs={"image": x[16:17]}, id="k2"), timeout_s=10)
    finally:
        await tier.close()
    assert response.id == "k1"
    assert response.model_name == "large"
    assert sorted(response.outputs) == sorted(expected)
    for name, value in expected.items():
        got = response.outputs[name]
        assert got.dtype == value.dtype, name
        np.testing.assert_array_equal(got, value)
    assert single.id == "k2"
    np.testing.assert_array_equal(
        single.outputs["label"],
        _direct(shared_zoo_dir / "large" / "1" / "model.onnx", x[16:17])["label"],
    )
    # KServe's GET /v2 lists no binary_tensor_data extension: auto-detection picks JSON
    # (its REST server still accepts binary tensors when told to send them).
    assert tier._binary is (binary is True)


def _plan(path: Path, zoo: Path, cloud_url: str) -> Path:
    path.write_text(
        f"""
version: 1
tiers:
  device:
    kind: device
    site: store-1
    region: us-east
    local: {{model: {zoo / "tiny" / "1" / "model.onnx"}}}
    rtt_p50_ms: 0
    rtt_p99_ms: 0
    cost_usd_per_inference: 0
  cloud:
    kind: cloud
    region: us-east
    url: {cloud_url}
    model: large
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.0002
    timeout_s: 10
workloads:
  digits:
    privacy: public
    cascade:
      - {{tier: device, rule: max_prob, threshold: {THRESHOLD}}}
      - {{tier: cloud}}
"""
    )
    return path


async def test_client_escalates_to_the_kserve_cloud_tier(
    kserve: KServeProcess, shared_zoo_dir: Path, tmp_path: Path
) -> None:
    x, _ = load_eval(shared_zoo_dir)
    tiny = _direct(shared_zoo_dir / "tiny" / "1" / "model.onnx", x[:200])["probabilities"]
    confidence = tiny.max(axis=1)
    # Clear of the threshold, so float noise between batch and single-row runs cannot flip it.
    unsure = int(np.flatnonzero(confidence < THRESHOLD - 0.05)[0])
    sure = int(np.flatnonzero(confidence > THRESHOLD + 0.05)[0])
    large = _direct(shared_zoo_dir / "large" / "1" / "model.onnx", x[unsure : unsure + 1])
    plan = _plan(tmp_path / "plan.yaml", shared_zoo_dir, kserve.url)
    async with Client(plan) as client:
        escalated = await client.infer({"image": x[unsure : unsure + 1]}, workload="digits")
        kept = await client.infer({"image": x[sure : sure + 1]}, workload="digits")
    assert escalated.tier == "cloud"
    assert not escalated.degraded
    assert [(a.tier, a.outcome) for a in escalated.trace.attempts] == [
        ("device", "escalated"),
        ("cloud", "answered"),
    ]
    assert escalated.trace.answered_by == "cloud"
    assert escalated.trace.cost_usd == pytest.approx(0.0002)
    for name, value in large.items():
        np.testing.assert_array_equal(escalated.outputs[name], value)
    assert kept.tier == "device"
    assert [a.tier for a in kept.trace.attempts] == ["device"]
