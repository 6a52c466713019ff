"""Runtimes by name: onnxruntime is built in, an unknown name lists the known ones, and a
second runtime plugs in and serves through the tier server by ``runtime:`` alone."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest

from onnx_models import scale_model
from server_helpers import running_server
from tierwise.errors import ConfigError, ModelNotReadyError
from tierwise.runtime import (
    Backend,
    OnnxBackend,
    OnnxSettings,
    Signature,
    TensorSpec,
    WarmupSample,
    check_runtime,
    make_backend,
    model_file_of,
    register_runtime,
    runtime_names,
    unregister_runtime,
)
from tierwise.server import ModelConfig, ServerSettings

RUNTIME = "numpy-matmul"


class MatmulBackend(Backend):
    """``y = x @ W`` with W read from a ``.npy`` file: a runtime without onnxruntime."""

    runtime = RUNTIME

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path
        self._weights: np.ndarray | None = None

    @property
    def signature(self) -> Signature:
        if self._weights is None:
            raise ModelNotReadyError(model=self.name, reason="not loaded")
        rows, cols = self._weights.shape
        return Signature(
            (TensorSpec("x", "FP32", (-1, rows), ("batch", None)),),
            (TensorSpec("y", "FP32", (-1, cols), ("batch", None)),),
        )

    async def load(self) -> None:
        self._weights = np.load(self.path).astype(np.float32)
        self._loaded = True

    async def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        assert self._weights is not None
        return {"y": inputs["x"] @ self._weights}

    async def unload(self) -> None:
        self._weights = None
        self._loaded = False


def matmul_backend(
    name: str, path: Path, *, onnx: OnnxSettings | None, warmup: Sequence[WarmupSample]
) -> Backend:
    return MatmulBackend(name, path)


@pytest.fixture
def matmul_runtime() -> Iterator[str]:
    register_runtime(RUNTIME, matmul_backend, model_file="weights.npy")
    try:
        yield RUNTIME
    finally:
        unregister_runtime(RUNTIME)


def test_onnxruntime_is_built_in(tmp_path: Path) -> None:
    assert "onnxruntime" in runtime_names()
    assert model_file_of("onnxruntime") == "model.onnx"
    backend = make_backend("onnxruntime", "m", tmp_path / "model.onnx", onnx=OnnxSettings())
    assert isinstance(backend, OnnxBackend)
    assert backend.runtime == "onnxruntime"


def test_unknown_runtime_lists_the_known_ones(matmul_runtime: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make_backend("tensorflow", "m", tmp_path / "model.pb")
    assert info.value.parameter == "runtime"
    assert info.value.got == "tensorflow"
    assert str(info.value) == (
        "runtime: expected one of the known runtimes (numpy-matmul, onnxruntime), got 'tensorflow'"
    )
    with pytest.raises(ConfigError, match="known runtimes"):
        check_runtime("tensorflow")
    with pytest.raises(ConfigError) as refused:
        ModelConfig(runtime="tensorflow")
    assert refused.value.parameter == "runtime"


def test_a_name_is_registered_once(matmul_runtime: str) -> None:
    with pytest.raises(ConfigError, match="not registered yet"):
        register_runtime(RUNTIME, matmul_backend)
    register_runtime(RUNTIME, matmul_backend, model_file="weights.npy", replace=True)
    with pytest.raises(ConfigError, match="model_file"):
        register_runtime("other", matmul_backend, model_file="dir/weights.npy")
    with pytest.raises(ConfigError, match="name"):
        register_runtime(" ", matmul_backend)


def test_a_second_runtime_serves_by_its_name_in_config_yaml(
    matmul_runtime: str, tmp_path: Path
) -> None:
    weights = np.arange(12, dtype=np.float32).reshape(4, 3)
    (tmp_path / "linear" / "1").mkdir(parents=True)
    np.save(tmp_path / "linear" / "1" / "weights.npy", weights)
    (tmp_path / "linear" / "config.yaml").write_text(
        f"runtime: {matmul_runtime}\nbatching: {{max_batch_size: 8}}\n"
    )
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)  # onnxruntime beside it
    x = [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]]
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x}]}
    with (
        running_server(ServerSettings(model_repo=tmp_path)) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        metadata = client.get("/v2/models/linear").json()
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        answer = client.post("/v2/models/linear/infer", json=body)
        assert answer.status_code == 200, answer.text
        (y,) = answer.json()["outputs"]
        assert y["shape"] == [2, 3]
        expected = np.asarray(x, np.float32) @ weights
        np.testing.assert_allclose(np.asarray(y["data"]).reshape(2, 3), expected)
        scale = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x[0]}]}
        assert client.post("/v2/models/scale/infer", json=scale).status_code == 200
        served = server.app.manager.resolve("linear")
        assert isinstance(served.backend, MatmulBackend)
        assert served.path.name == "weights.npy"
