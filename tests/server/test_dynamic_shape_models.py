"""Models that a guessed warm-up breaks, served beside a healthy one in one server and
asked through tritonclient (binary and JSON, several requests in flight): a detector
with symbolic height and width, a reflect-padded audio front end, a model with a 0-d
sample rate and a state whose batch dimension is not the first, and a model whose runs
fail. Answers must equal onnxruntime called directly on the same inputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from onnx_models import (
    detector_model,
    failing_model,
    reflect_pad_model,
    scale_model,
    stateful_model,
)
from server_helpers import RunningServer, captured_logs, running_server
from tierwise.server import ServerSettings

DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


@dataclass
class Served:
    server: RunningServer
    repo: Path
    logs: list[str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    repo = tmp_path_factory.mktemp("repo")
    scale_model(repo / "scale" / "1" / "model.onnx", 2.0)
    detector_model(repo / "detector" / "1" / "model.onnx")
    reflect_pad_model(repo / "audio" / "1" / "model.onnx")
    stateful_model(repo / "vad" / "1" / "model.onnx")
    failing_model(repo / "boom" / "1" / "model.onnx")
    for name in ("detector", "audio", "vad"):  # give the batcher time to see requests together
        (repo / name / "config.yaml").write_text("batching: {max_queue_delay_ms: 20}\n")
    with captured_logs() as logs, running_server(ServerSettings(model_repo=repo)) as server:
        yield Served(server, repo, logs)


def _direct(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the server runs it: the same summation order
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs), strict=True))


def _concurrently(
    served: Served, model: str, requests: list[dict[str, np.ndarray]], binary: bool
) -> list[dict[str, np.ndarray]]:
    """Send every request at once (tritonclient's async_infer) and collect the answers."""
    client = triton.InferenceServerClient(url=served.server.host_port, concurrency=8)
    try:
        outputs = [
            triton.InferRequestedOutput(o["name"], binary_data=binary)
            for o in client.get_model_metadata(model)["outputs"]
        ]
        pending = []
        for inputs in requests:
            infer_inputs = []
            for name, array in inputs.items():
                infer_input = triton.InferInput(name, list(array.shape), DATATYPES[array.dtype])
                infer_input.set_data_from_numpy(array, binary_data=binary)
                infer_inputs.append(infer_input)
            pending.append(client.async_infer(model, infer_inputs, outputs=outputs))
        answers = []
        for request in pending:
            result = request.get_result()
            answers.append({o.name(): result.as_numpy(o.name()) for o in outputs})
        return answers
    finally:
        client.close()


def _check(served: Served, model: str, requests: list[dict[str, np.ndarray]], binary: bool) -> None:
    path = served.repo / model / "1" / "model.onnx"
    for inputs, got in zip(requests, _concurrently(served, model, requests, binary), strict=True):
        for name, want in _direct(path, inputs).items():
            assert got[name].dtype == want.dtype, name
            assert got[name].shape == want.shape, name
            # onnxruntime's vectorised reductions round by the input buffer's alignment,
            # which a tensor decoded from the wire does not share: 1 ulp apart at most
            np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-7, err_msg=name)


def _batches(served: Served, model: str) -> tuple[int, int]:
    """(batches run, rows run) for ``model`` from the server's metrics."""
    text = httpx.get(served.server.url + "/metrics").text
    found = {}
    for kind in ("count", "sum"):
        match = re.search(rf'tierwise_batch_size_{kind}{{model="{model}",version="1"}} (\S+)', text)
        found[kind] = int(float(match.group(1))) if match else 0
    return found["count"], found["sum"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_detector_with_symbolic_height_and_width(served: Served, binary: bool) -> None:
    rng = np.random.default_rng(1)
    shapes = [(1, 32, 32), (2, 64, 48), (1, 32, 32), (1, 64, 48), (3, 32, 32), (1, 96, 64)]
    requests = [
        {"images": rng.random((b, 3, h, w), dtype=np.float32)} for b, h, w in shapes + shapes
    ]
    _check(served, "detector", requests, binary)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_reflect_padded_audio_of_several_lengths(served: Served, binary: bool) -> None:
    rng = np.random.default_rng(2)
    lengths = [(1, 100), (2, 37), (1, 100), (1, 1600), (3, 37), (1, 5), (2, 100), (1, 37)]
    requests = [{"audio": rng.standard_normal((b, n)).astype(np.float32)} for b, n in lengths]
    _check(served, "audio", requests, binary)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_scalar_input_and_state_run_one_request_at_a_time(served: Served, binary: bool) -> None:
    rng = np.random.default_rng(3)
    requests = [
        {
            "input": rng.standard_normal((rows, 16)).astype(np.float32),
            "sr": np.array(rate, dtype=np.int64),
            "state": rng.standard_normal((2, rows, 8)).astype(np.float32),
        }
        for rows, rate in [(1, 16000), (2, 8000), (1, 8000), (3, 16000), (1, 16000), (2, 8000)]
    ]
    before = _batches(served, "vad")
    _check(served, "vad", requests, binary)
    after = _batches(served, "vad")
    assert after[0] - before[0] == len(requests)  # never merged, not even the 1-row ones


def test_healthy_model_beside_them(served: Served) -> None:
    client = triton.InferenceServerClient(url=served.server.host_port)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    infer_input = triton.InferInput("x", [2, 4], "FP32")
    infer_input.set_data_from_numpy(x)
    result = client.infer("scale", [infer_input])
    np.testing.assert_array_equal(result.as_numpy("y"), x * 2)
    assert client.is_model_ready("scale")
    assert client.is_model_ready("detector")
    assert not client.is_model_ready("boom")
    client.close()


def test_failed_model_is_unavailable_with_its_reason(served: Served) -> None:
    with httpx.Client(base_url=served.server.url, timeout=10) as client:
        index = {row["name"]: row for row in client.post("/v2/repository/index").json()}
        assert {name: row["state"] for name, row in index.items()} == {
            "audio": "READY",
            "boom": "UNAVAILABLE",
            "detector": "READY",
            "scale": "READY",
            "vad": "READY",
        }
        reason = index["boom"]["reason"]
        assert index["boom"]["version"] == "1"
        assert reason.startswith(
            "warm-up failed on inputs from the signature (batch of 1) (x FP32 [1, 4]): "
        )
        assert "indices element out of data bounds" in reason
        ready = client.get("/v2/models/boom/ready")
        assert (ready.status_code, ready.json()) == (503, {"name": "boom", "ready": False})
        x = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
        refused = client.post("/v2/models/boom/infer", json={"inputs": [x]})
        assert refused.status_code == 503
        assert refused.json() == {"error": f"model 'boom': {reason}"}
        # one broken model keeps the server not ready (Triton's strict readiness), but
        # it stays live and every other model answers
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 503
    tclient = triton.InferenceServerClient(url=served.server.host_port)
    infer_input = triton.InferInput("x", [1, 4], "FP32")
    infer_input.set_data_from_numpy(np.ones((1, 4), np.float32))
    with pytest.raises(InferenceServerException) as info:
        tclient.infer("boom", [infer_input])
    assert info.value.status() == "503"
    assert "warm-up failed" in str(info.value.message())
    tclient.close()


def test_metadata_says_how_each_model_runs(served: Served) -> None:
    with httpx.Client(base_url=served.server.url, timeout=10) as client:
        scale = client.get("/v2/models/scale").json()
        assert scale["parameters"] == {"max_batch_size": 64}
        detector = client.get("/v2/models/detector").json()
        assert detector["inputs"] == [
            {"name": "images", "datatype": "FP32", "shape": [-1, 3, -1, -1]}
        ]
        assert detector["parameters"] == {
            "max_batch_size": 64,
            "warmup": "none: input 'images' has dynamic dimensions besides the batch "
            "dimension: 'height' (axis 2), 'width' (axis 3)",
        }
        vad = client.get("/v2/models/vad").json()["parameters"]
        assert vad["max_batch_size"] == 1
        assert vad["batching"] == (
            "one request at a time: input 'sr' is a scalar (0-d), so it has no batch dimension"
        )
        assert vad["warmup"].startswith("none: input 'input' has dynamic dimensions")


def test_each_choice_is_logged_once(served: Served) -> None:
    # after the requests of the other tests: nothing is logged per request
    _check(served, "detector", [{"images": np.ones((1, 3, 16, 16), np.float32)}], True)
    logs = served.logs

    def count(text: str) -> int:
        return sum(text in line for line in logs)

    assert count("model detector version 1 loaded without warm-up: input 'images'") == 1
    assert count("model audio version 1 loaded without warm-up: input 'audio'") == 1
    assert count("model vad version 1 loaded without warm-up") == 1
    assert count("model scale version 1 loaded without warm-up") == 0
    assert count("model vad version 1 runs one request at a time: input 'sr'") == 1
    assert count("runs one request at a time") == 1
    assert count("declare its inputs under warmup: in detector/config.yaml") == 1
    assert count("unavailable: boom (reasons in POST /v2/repository/index)") == 1
    assert any(line.startswith("serving audio:1, detector:1, scale:1, vad:1 ") for line in logs)
