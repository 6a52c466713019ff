"""A model that fails to load or warm up is UNAVAILABLE with its reason while the others
serve; ``strict`` fails the start instead. Declared warm-up in ``config.yaml`` is run,
and a declaration that does not fit the model is a config error naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from onnx_models import detector_model, failing_model, scale_model
from server_helpers import captured_logs, free_port, running_server, server_process
from tierwise.errors import ModelLoadError
from tierwise.server import ServerSettings, create_app, load_yaml_settings

BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}


def _repo(root: Path) -> Path:
    scale_model(root / "scale" / "1" / "model.onnx", 2.0)
    failing_model(root / "boom" / "1" / "model.onnx")
    return root


async def test_strict_start_fails_and_unloads_what_it_loaded(tmp_path: Path) -> None:
    scale_model(tmp_path / "alpha" / "1" / "model.onnx", 1.0)  # loads before "boom"
    app = create_app(ServerSettings(model_repo=_repo(tmp_path), strict=True))
    with pytest.raises(ModelLoadError) as info:
        await app.startup()
    assert (info.value.model, info.value.version) == ("boom", "1")
    assert str(info.value).startswith("model 'boom' version '1': warm-up failed on inputs")
    assert not app.manager.is_ready("alpha")  # loaded, then unloaded by the failed start
    assert [(r["name"], r["state"]) for r in app.manager.index()] == [
        ("alpha", "UNAVAILABLE"),
        ("boom", "UNAVAILABLE"),
    ]


async def test_default_start_serves_the_others(tmp_path: Path) -> None:
    app = create_app(ServerSettings(model_repo=_repo(tmp_path)))
    await app.startup()
    try:
        assert app.manager.is_ready("scale")
        assert not app.manager.is_ready("boom")
        assert [(r["name"], r["state"]) for r in app.manager.index()] == [
            ("boom", "UNAVAILABLE"),
            ("scale", "READY"),
        ]
    finally:
        await app.shutdown()


def test_strict_in_server_yaml(tmp_path: Path) -> None:
    (tmp_path / "server.yaml").write_text(f"model_repo: {tmp_path}\nstrict: true\n")
    assert load_yaml_settings(tmp_path / "server.yaml").strict
    assert not load_yaml_settings(tmp_path / "server.yaml", strict=False).strict


def test_serve_strict_exits_and_default_serves_the_others(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    strict = subprocess.run(
        [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
         "--port", str(free_port()), "--strict"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert strict.returncode == 3, strict.stderr
    assert "model 'boom' version '1': warm-up failed" in strict.stderr
    with (
        server_process(repo, ready_path="/v2/models/scale/ready") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        assert client.post("/v2/models/scale/infer", json=BODY).status_code == 200
        refused = client.post("/v2/models/boom/infer", json=BODY)
        assert refused.status_code == 503
        assert "warm-up failed" in refused.json()["error"]
        assert server.process.poll() is None


def test_declared_warmup_is_run(tmp_path: Path) -> None:
    detector_model(tmp_path / "good" / "1" / "model.onnx")
    (tmp_path / "good" / "config.yaml").write_text(
        "warmup:\n"
        "  - inputs:\n"
        "      images: {shape: [1, 3, 64, 64], datatype: FP32, fill: random}\n"
        "  - inputs:\n"
        "      images: {shape: [2, 3, 32, 48], datatype: FP32, fill: zeros}\n"
    )
    # a shape the signature allows but the graph cannot run: only a real run finds out
    detector_model(tmp_path / "odd" / "1" / "model.onnx")
    (tmp_path / "odd" / "config.yaml").write_text(
        "warmup: [{inputs: {images: {shape: [1, 3, 6, 6], datatype: FP32}}}]\n"
    )
    with (
        captured_logs() as logs,
        running_server(ServerSettings(model_repo=tmp_path)) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        index = {r["name"]: r for r in client.post("/v2/repository/index").json()}
        assert index["good"]["state"] == "READY"
        assert index["odd"]["state"] == "UNAVAILABLE"
        assert index["odd"]["reason"].startswith(
            "warm-up failed on inputs from config.yaml warmup (images FP32 [1, 3, 6, 6]): "
        )
        assert "Concat" in index["odd"]["reason"]
        assert "warmup" not in client.get("/v2/models/good").json()["parameters"]
    assert not [line for line in logs if "loaded without warm-up" in line]


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        (
            "{imgs: {shape: [1, 3, 8, 8], datatype: FP32}}",
            "config.yaml warmup.0.inputs.imgs: expected an input of the model (images), got 'imgs'",
        ),
        (
            "{images: {shape: [1, 3, 8, 8], datatype: INT64}}",
            "config.yaml warmup.0.inputs.images.datatype: expected FP32, the model's, got 'INT64'",
        ),
        (
            "{images: {shape: [1, 3, 8, 8], datatype: FP32, fill: ones}}",
            "warmup.0.inputs.images.fill: expected zeros, random or a number, got 'ones'",
        ),
        (
            "{images: {shape: [1, 3, 8, 8], datatype: FLOAT}}",
            "warmup.0.inputs.images.datatype: expected one of BOOL",
        ),
    ],
)
def test_bad_declared_warmup_is_a_config_error_naming_the_field(
    tmp_path: Path, declared: str, reason: str
) -> None:
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)
    detector_model(tmp_path / "detector" / "1" / "model.onnx")
    (tmp_path / "detector" / "config.yaml").write_text(f"warmup: [{{inputs: {declared}}}]\n")
    with (
        running_server(ServerSettings(model_repo=tmp_path)) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        (row,) = [r for r in client.post("/v2/repository/index").json() if r["name"] == "detector"]
        assert row["state"] == "UNAVAILABLE"
        assert reason in row["reason"]
        assert client.get("/v2/models/detector/ready").status_code == 503
        assert client.post("/v2/models/scale/infer", json=BODY).status_code == 200
        refused = client.post("/v2/repository/models/detector/load")
        assert refused.status_code == 400
        assert reason in refused.json()["error"]


def test_a_version_that_fails_warmup_keeps_the_serving_one(tmp_path: Path) -> None:
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)
    with (
        running_server(ServerSettings(model_repo=tmp_path)) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        failing_model(tmp_path / "scale" / "2" / "model.onnx")
        refused = client.post("/v2/repository/models/scale/load")
        assert refused.status_code == 400
        assert refused.json()["error"].startswith(
            "model 'scale' version '2': warm-up failed on inputs"
        )
        answer = client.post("/v2/models/scale/infer", json=BODY).json()
        assert (answer["model_version"], answer["outputs"][0]["data"]) == ("1", [2, 2, 2, 2])
        index = client.post("/v2/repository/index").json()
        assert [(r["version"], r["state"]) for r in index] == [
            ("2", "UNAVAILABLE"),
            ("1", "READY"),
        ]
        assert "Gather" in index[0]["reason"]
        assert client.get("/v2/models/scale/versions/2/ready").status_code == 503
        assert client.get("/v2/health/ready").status_code == 200  # the model serves
        metrics = client.get("/metrics").text
        assert 'tierwise_model_load_failures_total{model="scale"} 1.0' in metrics

        scale_model(tmp_path / "scale" / "2" / "model.onnx", 3.0)  # fixed in place
        assert client.post("/v2/repository/models/scale/load").status_code == 200
        index = client.post("/v2/repository/index").json()
        assert [(r["version"], r["state"]) for r in index] == [("2", "READY")]
