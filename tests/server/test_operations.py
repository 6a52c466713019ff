"""Operations: graceful shutdown drains in-flight requests; access and error logs, as
plain lines or JSON lines."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from server_helpers import server_process
from tierwise.bench import dense_stack_model
from tierwise.protocol import InferRequest, encode_request

WIDTH = 1024


def _in_flight(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("tierwise_inflight_requests "):
            return float(line.split()[1])
    raise AssertionError("no tierwise_inflight_requests in /metrics")


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dense_stack_model(repo / "heavy" / "1" / "model.onnx", width=WIDTH, depth=16)
    (repo / "heavy" / "config.yaml").write_text("batching: {max_batch_size: 1}\n")
    x = np.ones((128, WIDTH), np.float32)  # about 0.1 s per request
    body, length = encode_request(InferRequest(inputs={"x": x}), binary=True)
    headers = {"Inference-Header-Content-Length": str(length)}
    statuses: list[int] = []
    connected = threading.Barrier(7)

    def one(url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            client.get("/v2/health/live")  # connected before the requests go out together
            connected.wait(timeout=30)
            statuses.append(
                client.post("/v2/models/heavy/infer", content=body, headers=headers).status_code
            )

    with server_process(repo) as server, httpx.Client(base_url=server.url) as probe:
        threads = [threading.Thread(target=one, args=(server.url,)) for _ in range(6)]
        for t in threads:
            t.start()
        connected.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _in_flight(probe) < 6:  # every request queued or running
            assert time.monotonic() < deadline, "the six requests never were in flight together"
            time.sleep(0.005)
        server.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        # uvicorn re-raises the signal once it has shut down cleanly
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
        log = server.log()
    assert statuses == [200] * 6, log
    assert "Application shutdown complete" in log
    assert "Traceback" not in log


def test_json_access_and_error_logs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dense_stack_model(repo / "m" / "1" / "model.onnx", width=4, depth=1)
    bad = repo / "broken" / "1" / "model.onnx"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not onnx")
    extra = ("--access-log", "--log-json")
    with server_process(repo, *extra, ready_path="/v2/models/m/ready") as server:
        with httpx.Client(base_url=server.url) as client:
            body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}]}
            assert client.post("/v2/models/m/infer", json=body).status_code == 200
            assert client.post("/v2/models/m/infer", content=b"{").status_code == 400
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("path") == "/v2/models/m/infer"]
    assert [a["status"] for a in access] == [200, 400]
    assert all(a["method"] == "POST" and a["duration_ms"] >= 0 for a in access)
    errors = [line for line in lines if line.get("level") == "error"]
    assert any("broken" in e["msg"] and "could not load" in e["msg"] for e in errors)
