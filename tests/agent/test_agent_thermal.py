"""The thermal guard: hysteresis, throttling the node's server, and the router offloading
to the cloud while the node is hot; then recovery."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from agent_helpers import Release, node_settings, running_node
from server_helpers import running_server
from tierwise.agent import ThermalGuard, read_celsius
from tierwise.errors import ConfigError
from tierwise.server import ServerSettings

ROW = np.random.default_rng(1).random((1, 8, 8), dtype=np.float32).ravel().tolist()


def test_hysteresis() -> None:
    guard = ThermalGuard(high_c=80, low_c=70)
    trace = [60, 79.9, 80, 85, 75, 70.1, 70, 72, 79, 81, None, 50]
    states = [guard.observe(t).throttled for t in trace]
    assert states == [False, False, True, True, True, True, False, False, False, True, True, False]
    assert guard.transitions == 4
    with pytest.raises(ConfigError, match="low_c"):
        ThermalGuard(high_c=70, low_c=70)


def test_read_celsius(tmp_path: Path) -> None:
    sysfs = tmp_path / "temp"
    sysfs.write_text("52312\n")
    assert read_celsius(sysfs) == pytest.approx(52.312)
    sysfs.write_text("48.5")
    assert read_celsius(sysfs) == 48.5
    sysfs.write_text("hot")
    with pytest.raises(ConfigError, match=r"thermal\.source"):
        read_celsius(sysfs)


def _plan(path: Path, cloud_url: str) -> Path:
    path.write_text(
        f"""
version: 1
tiers:
  edge:
    kind: edge
    site: store-1
    region: us-east
    url: http://127.0.0.1:9
    model: small
    rtt_p50_ms: 0
    rtt_p99_ms: 1
    cost_usd_per_inference: 0.000001
    timeout_s: 2
  cloud:
    kind: cloud
    region: us-east
    url: {cloud_url}
    model: large
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.0002
    timeout_s: 2
workloads:
  digits:
    privacy: public
    cascade:
      - {{tier: edge, rule: max_prob, threshold: 0.0}}
      - {{tier: cloud}}
"""
    )
    return path


def _route(url: str) -> str:
    body = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": ROW}]}
    response = httpx.post(url + "/v2/models/digits/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["parameters"]["tier"])


def _wait(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_hot_node_throttles_and_offloads_then_recovers(
    tmp_path: Path, release: Release, shared_zoo_dir: Path
) -> None:
    cloud_repo = tmp_path / "cloud"
    (cloud_repo / "large" / "1").mkdir(parents=True)
    (cloud_repo / "large" / "1" / "model.onnx").write_bytes(
        (shared_zoo_dir / "large" / "1" / "model.onnx").read_bytes()
    )
    temperature = tmp_path / "temp"
    temperature.write_text("55000")
    with running_server(ServerSettings(model_repo=cloud_repo)) as cloud:
        settings = node_settings(
            tmp_path, release,
            thermal={"source": temperature, "high_c": 80, "low_c": 70, "poll_s": 0.02,
                     "throttled_instances": 1, "throttled_queue": 2,
                     "throttled_duty_cycle": 0.4},
            gateway={"plan": _plan(tmp_path / "plan.yaml", cloud.url), "local_tier": "edge"},
            defaults={"batching": {"max_queue_size": 64}},
        )  # fmt: skip
        with running_node(settings) as node:
            node.desired("1")
            _wait(lambda: node.status()["temperature_c"] == 55.0)
            assert _route(node.gateway_url) == "edge"
            manager = node.app.agent.server.manager
            assert manager.resolve("small").batcher.limits == (1, 64)

            temperature.write_text("85000")
            _wait(lambda: node.status()["thermal_throttled"])
            assert manager.resolve("small").batcher.limits == (1, 2)
            assert manager.resolve("small").batcher.duty_cycle == 0.4
            assert {_route(node.gateway_url) for _ in range(5)} == {"cloud"}
            metrics = httpx.get(node.url + "/metrics", timeout=10).text
            assert "tierwise_agent_thermal_throttled 1.0" in metrics
            assert "tierwise_agent_temperature_celsius 85.0" in metrics

            temperature.write_text("75000")  # between the thresholds: still hot
            _wait(lambda: node.status()["temperature_c"] == 75.0)
            assert node.status()["thermal_throttled"] is True
            assert _route(node.gateway_url) == "cloud"

            temperature.write_text("65000")
            _wait(lambda: not node.status()["thermal_throttled"])
            assert manager.resolve("small").batcher.limits == (1, 64)
            assert manager.resolve("small").batcher.duty_cycle == 1.0
            assert _route(node.gateway_url) == "edge"
