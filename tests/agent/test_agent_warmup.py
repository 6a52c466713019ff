"""A bundle whose model fails its warm-up never takes the node down: an activation keeps
the serving version, and a node whose active version no longer warms up still starts."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from agent_helpers import Release, node_settings, running_node
from onnx_models import failing_model
from server_helpers import captured_logs

ROW = np.random.default_rng(0).random((1, 8, 8), dtype=np.float32)


def _infer(url: str) -> tuple[int, str | None]:
    body = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32",
                        "data": ROW.ravel().tolist()}]}  # fmt: skip
    response = httpx.post(url + "/v2/models/small/infer", json=body, timeout=10)
    return response.status_code, response.json().get("model_version")


def test_a_version_that_fails_warmup_is_not_activated(tmp_path: Path, release: Release) -> None:
    release.publish("5", failing_model(tmp_path / "boom.onnx"))
    settings = node_settings(tmp_path, release)
    with running_node(settings) as node:
        assert node.desired("1")["sync"]["result"] == "activated"
        answer = node.desired("5")
        sync = answer["sync"]
        assert sync["result"] == "error"
        assert "model 'small' version '2': warm-up failed" in sync["error"]
        status = answer["status"]
        assert (status["version"], status["generation"]) == ("1", 1)
        assert status["health"] == {"live": True, "ready": True}
        assert status["held"] == [release.versions["5"].digest]
        assert sorted(p.name for p in (settings.state_dir / "repo" / "small").iterdir()) == ["1"]
        assert _infer(node.url) == (200, "1")
        again = httpx.post(node.url + "/v2/agent/sync", timeout=30).json()["sync"]
        assert again["result"] == "held"  # not tried again until the desired state changes


def test_a_node_whose_active_version_no_longer_warms_up_still_starts(
    tmp_path: Path, release: Release
) -> None:
    release.publish("5", failing_model(tmp_path / "boom.onnx"))
    # activated while warm-up was off, so nothing ran it
    cold = node_settings(tmp_path, release, defaults={"onnx": {"warmup_runs": 0}})
    with running_node(cold) as node:
        assert node.desired("1")["sync"]["result"] == "activated"
        assert node.desired("5")["sync"]["result"] == "activated"
    settings = node_settings(tmp_path, release)
    with captured_logs("tierwise.agent") as logs, running_node(settings) as node:
        status = node.status()
        assert status["version"] == "5"
        assert status["health"] == {"live": True, "ready": False}
        assert status["models"] == {"small": False}
        assert httpx.get(node.url + "/v2/health/live", timeout=10).status_code == 200
        assert httpx.get(node.url + "/v2/health/ready", timeout=10).status_code == 503
        refused = httpx.post(
            node.url + "/v2/models/small/infer",
            json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                              "data": [1, 2, 3, 4]}]},
            timeout=10,
        )  # fmt: skip
        assert refused.status_code == 503
        assert "warm-up failed" in refused.json()["error"]
        index = httpx.post(node.url + "/v2/repository/index", timeout=10).json()
        assert [(r["name"], r["state"]) for r in index] == [("small", "UNAVAILABLE")]
        # a rollback from the node's own store, with no network, serves what worked
        back = httpx.post(node.url + "/v2/agent/rollback", json={}, timeout=30).json()
        assert back["rolled_back_to"] == "1"
        assert back["status"]["health"]["ready"] is True
        assert _infer(node.url)[0] == 200
    assert any("could not serve 5 again from this node" in line for line in logs)
