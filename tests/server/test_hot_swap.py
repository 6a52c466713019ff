"""Hot swap without downtime: a client loop running through version changes sees no
errors; a corrupt version is refused and the serving one keeps serving."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from onnx_models import scale_model
from server_helpers import running_server
from tierwise.server import ServerSettings

BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}


class Load:
    """Clients hammering one model from threads, recording every answer or error."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[float, str]] = []
        self.per_client: list[list[float]] = [[] for _ in range(threads)]
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/v2/models/scale/infer", json=BODY)
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code} {r.text}")
                    continue
                body = r.json()
                value = body["outputs"][0]["data"][0]
                self.answers.append((value, body["model_version"]))
                self.per_client[index].append(value)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)

    def wait_for(self, value: float, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.answers and self.answers[-1][0] == value:
                return
            time.sleep(0.01)
        raise AssertionError(f"never answered {value}; last {self.answers[-3:]}")


def test_swap_under_load_then_refuse_corrupt_version(tmp_path: Path) -> None:
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)
    with (
        running_server(ServerSettings(model_repo=tmp_path)) as server,
        httpx.Client(base_url=server.url, timeout=30) as admin,
        Load(server.url) as load,
    ):
        load.wait_for(2.0)
        scale_model(tmp_path / "scale" / "2" / "model.onnx", 3.0)
        assert admin.post("/v2/repository/models/scale/load").status_code == 200
        load.wait_for(3.0)
        time.sleep(0.2)

        corrupt = tmp_path / "scale" / "3" / "model.onnx"
        corrupt.parent.mkdir()
        corrupt.write_bytes(b"\x08\x07not an onnx model")
        refused = admin.post("/v2/repository/models/scale/load")
        assert refused.status_code == 400
        assert "could not load" in refused.json()["error"]
        time.sleep(0.2)
        index = admin.post("/v2/repository/index").json()
        assert [r["version"] for r in index if r["state"] == "READY"] == ["2"]
        assert admin.get("/v2/models/scale").json()["versions"] == ["2"]
        metrics = admin.get("/metrics").text
        assert 'tierwise_model_load_failures_total{model="scale"} 1.0' in metrics

    assert load.errors == []
    assert {v for v, _ in load.answers} == {2.0, 3.0}  # never v3
    for values in load.per_client:  # once a client has seen v2, it never sees v1 again
        switch = values.index(3.0)
        assert set(values[switch:]) == {3.0}
    assert Counter(version for _, version in load.answers).keys() == {"1", "2"}


def test_directory_poll_picks_up_new_versions(tmp_path: Path) -> None:
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)
    settings = ServerSettings(model_repo=tmp_path, repository_poll_s=0.1)
    with running_server(settings) as server, Load(server.url, threads=2) as load:
        load.wait_for(2.0)
        staging = tmp_path / "staging.onnx"
        scale_model(staging, 5.0)
        (tmp_path / "scale" / "2").mkdir()
        staging.rename(tmp_path / "scale" / "2" / "model.onnx")  # atomic, as deploy tools do
        load.wait_for(5.0)
        scale_model(tmp_path / "other" / "1" / "model.onnx", 7.0)
        deadline = time.monotonic() + 10
        with httpx.Client(base_url=server.url) as client:
            while client.get("/v2/models/other/ready").status_code != 200:
                assert time.monotonic() < deadline, "new model never became ready"
                time.sleep(0.05)
    assert load.errors == []


def test_unload_then_load(tmp_path: Path) -> None:
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)
    with (
        running_server(ServerSettings(model_repo=tmp_path)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.post("/v2/repository/models/scale/unload").status_code == 200
        response = client.post("/v2/models/scale/infer", json=BODY)
        assert response.status_code == 503
        assert "unloaded" in response.json()["error"]
        assert client.get("/v2/health/ready").status_code == 503
        assert client.post("/v2/repository/index").json() == [
            {"name": "scale", "state": "UNAVAILABLE", "reason": "unloaded"}
        ]
        assert client.post("/v2/repository/models/scale/load").status_code == 200
        assert client.post("/v2/models/scale/infer", json=BODY).status_code == 200


def test_invalid_config_keeps_serving_version_and_names_the_field(tmp_path: Path) -> None:
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)
    with (
        running_server(ServerSettings(model_repo=tmp_path)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        (tmp_path / "scale" / "config.yaml").write_text("batching: {max_batch_size: -4}\n")
        refused = client.post("/v2/repository/models/scale/load")
        assert refused.status_code == 400
        assert "max_batch_size" in refused.json()["error"]
        assert client.post("/v2/models/scale/infer", json=BODY).status_code == 200
        (tmp_path / "scale" / "config.yaml").write_text("batching: {max_batch_size: [unclosed\n")
        refused = client.post("/v2/repository/models/scale/load")
        assert refused.status_code == 400
        assert "invalid YAML" in refused.json()["error"]
        assert client.post("/v2/models/scale/infer", json=BODY).status_code == 200
