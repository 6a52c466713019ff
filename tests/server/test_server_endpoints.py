from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from onnx_models import fixed_batch_model, mixed_model, scale_model
from server_helpers import RunningServer, running_server
from tierwise.server import ServerSettings


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    scale_model(root / "scale" / "1" / "model.onnx", 2.0)
    scale_model(root / "scale" / "2" / "model.onnx", 3.0)
    mixed_model(root / "mixed" / "1" / "model.onnx")
    fixed_batch_model(root / "fixed" / "1" / "model.onnx")
    (root / "scale" / "config.yaml").write_text(
        "batching: {max_batch_size: 16}\nversion_policy: all\n"
    )
    return root


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[RunningServer]:
    with running_server(ServerSettings(model_repo=repo, max_body_bytes=64 * 1024)) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def _infer_json(values: list[float], version: str | None = None) -> dict[str, object]:
    return {
        "id": "req-1",
        "parameters": {"note": "kept"},
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": values}],
    }


def test_health_and_server_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "tierwise"
    assert "binary_tensor_data" in meta["extensions"]
    assert "model_repository" in meta["extensions"]


def test_model_metadata_with_and_without_version(client: httpx.Client) -> None:
    meta = client.get("/v2/models/scale").json()
    assert meta["versions"] == ["2", "1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert client.get("/v2/models/scale/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/scale/ready").json() == {"name": "scale", "ready": True}
    assert client.get("/v2/models/scale/versions/1/ready").status_code == 200
    assert client.get("/v2/models/scale/versions/9/ready").status_code == 503


def test_infer_json_default_and_pinned_versions(client: httpx.Client) -> None:
    body = _infer_json([1, 2, 3, 4])
    latest = client.post("/v2/models/scale/infer", json=body).json()
    assert latest["id"] == "req-1"
    assert latest["model_version"] == "2"
    assert latest["outputs"][0]["data"] == [3, 6, 9, 12]
    pinned = client.post("/v2/models/scale/versions/1/infer", json=body).json()
    assert pinned["model_version"] == "1"
    assert pinned["outputs"][0]["data"] == [2, 4, 6, 8]


def test_infer_fixed_batch_model(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [[1, 2]]}]}
    out = client.post("/v2/models/fixed/infer", json=body).json()
    assert out["outputs"][0]["data"] == [2, 3]


def test_metrics_count_requests(client: httpx.Client) -> None:
    client.post("/v2/models/scale/infer", json=_infer_json([0, 0, 0, 0]))
    text = client.get("/metrics").text
    assert 'tierwise_requests_total{model="scale",outcome="success",version="2"}' in text
    assert "tierwise_batch_size_bucket" in text
    assert "tierwise_queue_duration_seconds_bucket" in text
    assert "tierwise_compute_duration_seconds_bucket" in text
    assert "tierwise_inflight_requests" in text
    assert 'tierwise_queue_depth{model="scale",version="2"}' in text


def test_repository_index(client: httpx.Client) -> None:
    rows = client.post("/v2/repository/index").json()
    assert {"name": "scale", "version": "1", "state": "READY", "reason": ""} in rows
    assert {r["name"] for r in rows} == {"scale", "mixed", "fixed"}


def test_mixed_datatypes_json(client: httpx.Client) -> None:
    body = {
        "inputs": [
            {"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]},
            {"name": "b", "shape": [2, 3], "datatype": "FP16", "data": [0.5] * 6},
            {"name": "c", "shape": [2], "datatype": "INT64", "data": [41, -2]},
            {"name": "d", "shape": [2, 2], "datatype": "BOOL", "data": [True, False, False, True]},
            {"name": "e", "shape": [2, 4], "datatype": "UINT8", "data": list(range(8))},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["hé", "x"]},
        ]
    }
    out = {o["name"]: o for o in client.post("/v2/models/mixed/infer", json=body).json()["outputs"]}
    np.testing.assert_allclose(out["sum"]["data"], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5])
    assert out["half"]["datatype"] == "FP16"
    assert out["count"]["data"] == [42, -1]
    assert out["flipped"]["data"] == [False, True, True, False]
    assert out["raw"]["data"] == list(range(8))
    assert out["text"]["data"] == ["hé", "x"]


def test_idempotency_key_runs_a_request_once(client: httpx.Client) -> None:
    def successes() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(
                'tierwise_requests_total{model="scale",outcome="success",version="2"}'
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    body = _infer_json([1, 2, 3, 4]) | {"parameters": {"idempotency_key": "item-7"}}
    before = successes()
    first = client.post("/v2/models/scale/infer", json=body)
    again = client.post("/v2/models/scale/infer", json=body)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert successes() == before + 1  # the model ran once for the two deliveries
    other = client.post(
        "/v2/models/scale/infer", json=body | {"parameters": {"idempotency_key": "item-8"}}
    )
    assert other.status_code == 200
    assert successes() == before + 2
