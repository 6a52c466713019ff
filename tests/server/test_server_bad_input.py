"""Every client mistake is the right 4xx with {"error": ...} naming what was wrong, and the
server keeps serving."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import httpx
import pytest

from onnx_models import scale_model
from server_helpers import RunningServer, running_server
from tierwise.server import ServerSettings

GOOD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
Z = {"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}
NO_TYPE = {"name": "x", "shape": [1, 4], "data": [1, 2, 3, 4]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("repo")
    scale_model(root / "scale" / "1" / "model.onnx", 2.0)
    with running_server(ServerSettings(model_repo=root, max_body_bytes=4096)) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def _with_input(**changes: object) -> dict[str, object]:
    tensor = dict(GOOD["inputs"][0]) | changes  # type: ignore[index]
    return {"inputs": [tensor]}


def _binary_body(header: dict[str, object], payload: bytes) -> tuple[bytes, int]:
    import json

    head = json.dumps(header).encode()
    return head + payload, len(head)


CASES = [
    ("wrong shape", _with_input(shape=[1, 5], data=[1, 2, 3, 4, 5]), 400, "expected shape [-1, 4]"),
    ("wrong datatype", _with_input(datatype="FP64"), 400, "expected datatype FP32"),
    ("unknown datatype", _with_input(datatype="FP8"), 400, "unknown datatype"),
    ("length mismatch", _with_input(data=[1, 2, 3]), 400, "'x'"),
    ("string in FP32", _with_input(data=["a", 2, 3, 4]), 400, "'x'"),
    ("negative dim", _with_input(shape=[-1, 4]), 400, "'x'"),
    ("unknown input", {"inputs": [*GOOD["inputs"], Z]}, 400, "'z'"),  # type: ignore[misc]
    ("missing input", {"inputs": []}, 400, "'x'"),
    ("missing field", {"inputs": [NO_TYPE]}, 400, "datatype"),
    ("unknown output", GOOD | {"outputs": [{"name": "nope"}]}, 400, "output 'nope'"),
    ("bad timeout", GOOD | {"parameters": {"timeout": "soon"}}, 400, "timeout"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "body", "status", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_json_requests(
    client: httpx.Client, label: str, body: dict[str, object], status: int, needle: str
) -> None:
    response = client.post("/v2/models/scale/infer", json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"], response.json()
    assert client.post("/v2/models/scale/infer", json=GOOD).status_code == 200


def _client_errors(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("tierwise_requests_total{") and 'outcome="client_error"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_invalid_json(client: httpx.Client) -> None:
    before = _client_errors(client)
    response = client.post("/v2/models/scale/infer", content=b"{not json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert _client_errors(client) == before + 1  # counted for the model like any mistake


def test_unknown_model_and_version(client: httpx.Client) -> None:
    response = client.post("/v2/models/nope/infer", json=GOOD)
    assert response.status_code == 404
    assert "'nope'" in response.json()["error"]
    response = client.post("/v2/models/scale/versions/7/infer", json=GOOD)
    assert response.status_code == 404
    assert "'7'" in response.json()["error"]
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/nope/ready").status_code == 404


def test_binary_header_length_past_body(client: httpx.Client) -> None:
    header = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                          "parameters": {"binary_data_size": 16}}]}  # fmt: skip
    body, length = _binary_body(header, struct.pack("<4f", 1, 2, 3, 4))
    ok = client.post(
        "/v2/models/scale/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(length)},
    )
    assert ok.status_code == 200
    assert ok.json()["outputs"][0]["data"] == [2, 4, 6, 8]
    bad = client.post(
        "/v2/models/scale/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(len(body) + 10)},
    )
    assert bad.status_code == 400
    assert "header" in bad.json()["error"].lower()
    short = client.post(
        "/v2/models/scale/infer",
        content=body[:-4],
        headers={"Inference-Header-Content-Length": str(length)},
    )
    assert short.status_code == 400
    assert "'x'" in short.json()["error"]


def test_oversized_body(client: httpx.Client) -> None:
    big = _with_input(shape=[1, 2000], data=[1.0] * 2000)
    response = client.post("/v2/models/scale/infer", json=big)
    assert response.status_code == 413
    assert "4096" in response.json()["error"]
    assert client.post("/v2/models/scale/infer", json=GOOD).status_code == 200


def test_deadline_already_past(client: httpx.Client) -> None:
    response = client.post("/v2/models/scale/infer", json=GOOD | {"parameters": {"timeout": 1}})
    assert response.status_code == 408
    assert "deadline of 1 us" in response.json()["error"]
    text = client.get("/metrics").text
    assert 'outcome="deadline"' in text


def test_routing_errors(client: httpx.Client) -> None:
    assert client.get("/v2/models/scale/infer").status_code == 405
    assert client.get("/v2/models/scale/infer").headers["allow"] == "POST"
    assert client.get("/nowhere").status_code == 404
    assert client.post("/v2/repository/models/nope/load").status_code == 404
    assert client.post("/v2/repository/index", content=b"[1").status_code == 400
    assert (
        client.post(
            "/v2/models/scale/infer", json=GOOD, headers={"Content-Encoding": "br"}
        ).status_code
        == 415
    )
