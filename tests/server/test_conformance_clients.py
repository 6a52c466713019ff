"""Conformance with two real V2 clients: tritonclient.http and kserve's REST client.
Outputs must equal onnxruntime called directly on the same file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from onnx_models import mixed_model
from server_helpers import RunningServer, running_server
from tierwise.server import ServerSettings


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mixed_model(tmp_path_factory.mktemp("repo") / "mixed" / "1" / "model.onnx")


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[RunningServer]:
    with running_server(ServerSettings(model_repo=model_file.parents[2])) as running:
        yield running


def _inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "a": rng.standard_normal((batch, 3)).astype(np.float32),
        "b": rng.standard_normal((batch, 3)).astype(np.float16),
        "c": rng.integers(-(2**40), 2**40, size=batch, dtype=np.int64),
        "d": rng.integers(0, 2, size=(batch, 2)).astype(bool),
        "e": rng.integers(0, 256, size=(batch, 4), dtype=np.uint8),
        "s": np.array([f"item {i} ü".encode() for i in range(batch)], dtype=object),
    }


DATATYPES = {"a": "FP32", "b": "FP16", "c": "INT64", "d": "BOOL", "e": "UINT8", "s": "BYTES"}


def _triton_inputs(
    inputs: dict[str, np.ndarray], binary: Callable[[str], bool]
) -> list[triton.InferInput]:
    out = []
    for name, array in inputs.items():
        infer_input = triton.InferInput(name, list(array.shape), DATATYPES[name])
        infer_input.set_data_from_numpy(array, binary_data=binary(name))
        out.append(infer_input)
    return out


def _direct(model_file: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    feeds = dict(inputs)
    feeds["s"] = np.array([v.decode() for v in inputs["s"]], dtype=object)
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(None, feeds), strict=True))
    out["text"] = np.array([v.encode() for v in out["text"]], dtype=object)
    return out


def _assert_equal(got: np.ndarray, want: np.ndarray, name: str) -> None:
    if want.dtype == object:
        # JSON carries BYTES as strings, which clients hand back as str
        values = [v.encode() if isinstance(v, str) else bytes(v) for v in got.ravel()]
        assert values == list(want.ravel()), name
        return
    assert got.dtype == want.dtype, name
    np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("batch", [1, 4])
def test_tritonclient_all_outputs(
    server: RunningServer, model_file: Path, binary: bool, batch: int
) -> None:
    client = triton.InferenceServerClient(url=server.host_port)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mixed")
    meta = client.get_model_metadata("mixed")
    assert [i["datatype"] for i in meta["inputs"]] == [
        "FP32",
        "FP16",
        "INT64",
        "BOOL",
        "UINT8",
        "BYTES",
    ]
    inputs = _inputs(batch)
    triton_inputs = _triton_inputs(inputs, binary=lambda name: binary)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=binary)
        for n in ("sum", "half", "count", "flipped", "raw", "text")
    ]
    result = client.infer("mixed", triton_inputs, outputs=outputs, request_id="abc")
    assert result.get_response()["id"] == "abc"
    want = _direct(model_file, inputs)
    for name in want:
        got = result.as_numpy(name)
        assert got is not None, name
        if not binary and name == "half":
            got = got.astype(np.float16)
        _assert_equal(got, want[name], name)
    client.close()


def test_tritonclient_requested_output_subset_mixed_encodings(
    server: RunningServer, model_file: Path
) -> None:
    client = triton.InferenceServerClient(url=server.host_port)
    inputs = _inputs(2)
    infer_inputs = _triton_inputs(inputs, binary=lambda name: name in ("a", "s"))
    outputs = [
        triton.InferRequestedOutput("count", binary_data=False),
        triton.InferRequestedOutput("text", binary_data=True),
    ]
    result = client.infer("mixed", infer_inputs, outputs=outputs)
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["count", "text"]
    by_name = {o["name"]: o for o in response["outputs"]}
    assert "data" in by_name["count"]
    assert "binary_data_size" in by_name["text"]["parameters"]
    want = _direct(model_file, inputs)
    _assert_equal(result.as_numpy("count"), want["count"], "count")
    _assert_equal(result.as_numpy("text"), want["text"], "text")
    assert result.as_numpy("sum") is None
    client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
async def test_kserve_rest_client(server: RunningServer, model_file: Path, binary: bool) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest
    from kserve.inference_client import RESTConfig

    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    try:
        assert await client.is_server_ready(server.url)
        assert await client.is_model_ready(server.url, "mixed")
        inputs = _inputs(3)
        kserve_inputs = []
        for name, array in inputs.items():
            kin = InferInput(name=name, shape=list(array.shape), datatype=DATATYPES[name])
            # kserve's client refuses FP16 in JSON, so that tensor always goes binary
            kin.set_data_from_numpy(array, binary_data=binary or name == "b")
            kserve_inputs.append(kin)
        request = InferRequest(model_name="mixed", infer_inputs=kserve_inputs, request_id="k-1")
        response = await client.infer(server.url, request, model_name="mixed")
        assert response.id == "k-1"
        want = _direct(model_file, inputs)
        got = {out.name: out.as_numpy() for out in response.outputs}
        for name in ("sum", "count", "flipped", "raw"):
            _assert_equal(got[name], want[name], name)
        np.testing.assert_array_equal(got["half"].astype(np.float16), want["half"])
        assert [v if isinstance(v, bytes) else v.encode() for v in got["text"].ravel()] == list(
            want["text"]
        )
    finally:
        await client.close()
