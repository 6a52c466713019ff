"""The gateway on a cascade of models the digits zoo did not make: a device model in
process that emits logits under its own name, and real ``tierwise serve`` processes whose
model's only output is ``save_infer_model/scale_0.tmp_1``. Requests route by the tensors
the plan names; a plan naming an output a model lacks is refused when the gateway starts
(exit 2, one line naming the stage, tier, model and outputs) and shown by route explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from score_models import (
    BLURRY,
    PADDLE_OUTPUT,
    SHARP,
    image_classifier,
    images,
    logits_of,
    v2_request,
)
from server_helpers import free_port, running_app, server_process
from tierwise.errors import ConfigError
from tierwise.escalation.rules import softmax
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
H, W = 4, 8
MEDIUM = np.array([[2.0, -2.0], [-2.0, 2.0], [0.6, -0.6]], np.float32)
DEVICE_BAR, EDGE_BAR = 0.9, 0.6


def tierwise(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``tierwise serve`` with ``ocr-edge`` (probabilities) and ``ocr-cloud`` (probabilities
    and an integer label), both under the PaddlePaddle output name; and the device's own
    logits model."""
    root = tmp_path_factory.mktemp("served")
    repo = root / "repo"
    image_classifier(repo / "ocr-edge" / "1" / "model.onnx", MEDIUM, height=H, width=W)
    image_classifier(repo / "ocr-cloud" / "1" / "model.onnx", SHARP, height=H, width=W, label=True)
    device = image_classifier(
        root / "device.onnx", BLURRY, logits=True, output="logits_out", height=H, width=W
    )
    with server_process(repo) as server:
        yield server.url, device, root


def write_plan(path: Path, url: str, device: Path, **first: Any) -> Path:
    stage = {"output": "logits_out", "scores": "logits"} | first
    doc = {
        "version": 1,
        "tiers": {
            "device": {"kind": "device", "site": "s1", "region": "r1",
                       "local": {"model": str(device)}, "rtt_p50_ms": 0, "rtt_p99_ms": 0,
                       "cost_usd_per_inference": 0},
            "edge": {"kind": "edge", "site": "s1", "region": "r1", "url": url,
                     "model": "ocr-edge", "rtt_p50_ms": 1, "rtt_p99_ms": 5,
                     "cost_usd_per_inference": 1e-5, "timeout_s": 5},
            "cloud": {"kind": "cloud", "region": "r1", "url": url, "model": "ocr-cloud",
                      "rtt_p50_ms": 1, "rtt_p99_ms": 5, "cost_usd_per_inference": 1e-4,
                      "timeout_s": 5},
        },
        "workloads": {
            "ocr": {
                "privacy": "public",
                "cascade": [
                    {"tier": "device", "rule": "max_prob", "threshold": DEVICE_BAR, **stage},
                    {"tier": "edge", "rule": "margin", "threshold": EDGE_BAR,
                     "output": PADDLE_OUTPUT},
                    {"tier": "cloud", "output": PADDLE_OUTPUT, "scores": "probabilities"},
                ],
            }
        },
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def expected_tier(x: np.ndarray) -> str:
    if softmax(logits_of(x, BLURRY)).max() >= DEVICE_BAR:
        return "device"
    p = softmax(logits_of(x, MEDIUM))[0]
    return "edge" if abs(p[0] - p[1]) >= EDGE_BAR else "cloud"


def test_the_gateway_routes_by_the_named_outputs(served: Any, tmp_path: Path) -> None:
    url, device, _ = served
    plan = load_plan(write_plan(tmp_path / "plan.yaml", url, device))
    app = Gateway(plan, build_router(plan), GatewaySettings())
    x = images(60, height=H, width=W, seed=11)
    seen = []
    with running_app(app) as (_, port), httpx.Client(timeout=30) as client:
        for row in x:
            r = client.post(
                f"http://127.0.0.1:{port}/v2/models/ocr/infer", json=v2_request(row[None])
            )
            assert r.status_code == 200, r.text
            doc = r.json()
            tier = doc["parameters"]["tier"]
            assert tier == expected_tier(row[None])
            assert doc["parameters"]["degraded"] is False
            names = {o["name"] for o in doc["outputs"]}
            assert names == ({"logits_out"} if tier == "device" else {PADDLE_OUTPUT} | (
                {"label"} if tier == "cloud" else set()
            ))  # fmt: skip
            seen.append(tier)
    assert set(seen) == {"device", "edge", "cloud"}


def test_a_missing_output_is_refused_at_start_and_shown_by_explain(
    served: Any, tmp_path: Path
) -> None:
    url, _, root = served
    paddle = image_classifier(root / "paddle.onnx", BLURRY, height=H, width=W)
    plan = write_plan(tmp_path / "plan.yaml", url, paddle, output="probabilities", scores=None)
    expected = (
        f"workloads.ocr.cascade[0] (tier 'device', model '{paddle}'): expected an output named"
        f" 'probabilities', but the model has none; the model's outputs: '{PADDLE_OUTPUT}'"
        " FP32 [?, 2]"
    )
    started = tierwise("gateway", "--plan", str(plan), "--port", str(free_port()))
    assert started.returncode == 2, started.stderr
    assert f"error: {expected}" in started.stderr.splitlines()
    assert "Traceback" not in started.stderr

    shown = tierwise("route", "explain", "--plan", str(plan), "--workload", "ocr")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    stages = lines[lines.index("stages:") + 1 :]
    assert stages[0] == f"  device  max_prob < 0.9 escalates; PROBLEM: {expected}"
    assert stages[1].startswith(f"  edge    margin < 0.6 escalates; reads '{PADDLE_OUTPUT}'")
    assert f"GET {url}/v2/models/ocr-edge when the gateway starts" in stages[1]
    as_json = tierwise("route", "explain", "--plan", str(plan), "--workload", "ocr", "--json")
    doc = json.loads(as_json.stdout)["stages"]
    assert doc[0]["problem"] == expected
    assert [s["scores"] for s in doc] == ["probabilities"] * 3


async def test_a_remote_output_is_refused_at_gateway_start(served: Any, tmp_path: Path) -> None:
    """The lifespan's startup fails (the server then exits) naming the remote stage."""
    url, device, _ = served
    plan_path = write_plan(tmp_path / "plan.yaml", url, device)
    doc = yaml.safe_load(plan_path.read_text())
    doc["workloads"]["ocr"]["cascade"][1]["output"] = "softmax_0.tmp_0"
    plan_path.write_text(yaml.safe_dump(doc))
    plan = load_plan(plan_path)
    app = Gateway(plan, build_router(plan), GatewaySettings())
    inbox: list[dict[str, Any]] = [{"type": "lifespan.startup"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    error = app.startup_error
    assert isinstance(error, ConfigError)
    assert sent == [{"type": "lifespan.startup.failed", "message": str(error)}]
    assert str(error) == (
        "workloads.ocr.cascade[1] (tier 'edge', model 'ocr-edge'): expected an output named"
        f" 'softmax_0.tmp_0', but the model has none; the model's outputs: '{PADDLE_OUTPUT}'"
        " FP32 [?, 2]"
    )
