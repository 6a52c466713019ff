"""Drift on the tier server: a version with a ``reference.json`` beside its model gets a
monitor fed by its batches, exported as ``tierwise_drift_*`` on /metrics; unshifted
traffic stays at level 0, shifted traffic alerts; the monitor follows hot swaps and
unloads, and a bad reference never stops the model from serving."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from onnx_models import scale_model
from score_models import PADDLE_OUTPUT, image_classifier, images, logits_of, v2_request
from server_helpers import captured_logs, running_server
from tierwise.errors import ConfigError
from tierwise.protocol import InferRequest
from tierwise.server import ServerSettings, create_app, load_yaml_settings
from tierwise.server.app import TierServer
from tierwise.server.drift import DriftHook
from tierwise.server.metrics import ServerMetrics
from tierwise.telemetry.drift import (
    REFERENCE_FILE,
    DriftMonitor,
    DriftSettings,
    reference_from_outputs,
)

H, W = 4, 8
DRIFT = {"window_rows": 250, "step_rows": 50}
#: these tests send faster than the default sample of rows a second: watch them all
EVERY_ROW = {"drift_max_rows_per_s": None}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def classifier_repo(root: Path, *, reference: bool = True) -> Path:
    """A paddle-like image classifier (not a zoo model) with a reference from 600 rows."""
    folder = root / "ocr" / "1"
    image_classifier(folder / "model.onnx", height=H, width=W)
    if reference:
        x = images(600, height=H, width=W, seed=0)
        ref = reference_from_outputs(x, softmax(logits_of(x)), output=PADDLE_OUTPUT, input_name="x")
        ref.save(folder / REFERENCE_FILE)
    return root


def drift_series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("tierwise_drift"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def level_of(text: str, model: str = "ocr", version: str = "1") -> float:
    key = ("tierwise_drift_level", (("model", model), ("version", version)))
    return drift_series(text)[key]


def send(client: httpx.Client, x: np.ndarray, rows: int = 10) -> None:
    for start in range(0, len(x), rows):
        answer = client.post("/v2/models/ocr/infer", json=v2_request(x[start : start + rows]))
        assert answer.status_code == 200, answer.text


def test_unshifted_traffic_stays_ok_and_shifted_traffic_alerts(tmp_path: Path) -> None:
    settings = ServerSettings(
        model_repo=classifier_repo(tmp_path / "repo"), drift=DRIFT, **EVERY_ROW
    )
    with running_server(settings) as server, httpx.Client(base_url=server.url) as client:
        send(client, images(500, height=H, width=W, seed=1))
        text = client.get("/metrics").text
        assert level_of(text) == 0
        found = drift_series(text)
        rows = ("tierwise_drift_window_rows", (("model", "ocr"), ("version", "1")))
        assert found[rows] == 250
        tests = {dict(labels)["signal"] + "/" + dict(labels)["test"]
                 for (name, labels) in found if name == "tierwise_drift_score"}  # fmt: skip
        assert tests == {
            "class/psi", "confidence/psi", "confidence/ks", "input_mean/ks", "input_std/ks"
        }  # fmt: skip

        # the same images, brighter and with more contrast: the inputs no longer match
        send(client, images(300, height=H, width=W, seed=2) * 4.0 + 3.0)
        text = client.get("/metrics").text
        assert level_of(text) == 2
        monitor = server.app.metrics.drift["ocr", "1"]
        assert isinstance(monitor, DriftMonitor)
        assert monitor.alerts >= 1
        assert monitor.scores()["input_mean", "ks"] > 0.5


def test_constant_inputs_alert(tmp_path: Path) -> None:
    settings = ServerSettings(
        model_repo=classifier_repo(tmp_path / "repo"), drift=DRIFT, **EVERY_ROW
    )
    with running_server(settings) as server, httpx.Client(base_url=server.url) as client:
        send(client, np.zeros((300, 3, H, W), np.float32))
        assert level_of(client.get("/metrics").text) == 2


def scrape(app: TierServer) -> str:
    return generate_latest(app.metrics.registry).decode()


async def infer(app: TierServer, x: np.ndarray) -> None:
    served = app.dataplane.admit("ocr", None)
    await app.dataplane.infer(served, InferRequest(inputs={"x": x}))
    await asyncio.sleep(0)  # the monitor is fed by a loop callback after the answer


async def test_monitor_follows_hot_swap_and_unload(tmp_path: Path) -> None:
    repo = classifier_repo(tmp_path / "repo")
    app = create_app(ServerSettings(model_repo=repo, drift=DRIFT))
    await app.startup()
    try:
        first = app.metrics.drift["ocr", "1"]
        await infer(app, images(40, height=H, width=W, seed=3))
        assert first.window_rows == 40
        # a new model file in the same version folder: the swapped-in version has its own
        image_classifier(repo / "ocr" / "1" / "model.onnx", height=H, width=W)
        await app.manager.load("ocr")
        second = app.metrics.drift["ocr", "1"]
        assert second is not first
        assert second.window_rows == 0
        await infer(app, images(40, height=H, width=W, seed=4))
        assert (second.window_rows, first.window_rows) == (40, 40)
        await app.manager.unload("ocr")
        assert app.metrics.drift == {}
        assert "tierwise_drift_level" not in scrape(app)
    finally:
        await app.shutdown()


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"format": 1, "rows": 0, "input": {}, "output": null}']
)
async def test_bad_reference_warns_once_and_serves(tmp_path: Path, content: bytes) -> None:
    repo = classifier_repo(tmp_path / "repo", reference=False)
    (repo / "ocr" / "1" / REFERENCE_FILE).write_bytes(content)
    with captured_logs() as messages:
        app = create_app(ServerSettings(model_repo=repo, drift=DRIFT))
        await app.startup()
        try:
            await infer(app, images(5, height=H, width=W))
            image_classifier(repo / "ocr" / "1" / "model.onnx", height=H, width=W)
            await app.manager.load("ocr")  # reloaded: the same bad file is not reported again
            await infer(app, images(5, height=H, width=W))
            assert app.metrics.drift == {}
        finally:
            await app.shutdown()
    warnings = [m for m in messages if "without drift monitoring" in m]
    assert len(warnings) == 1
    assert str(repo / "ocr" / "1" / REFERENCE_FILE) in warnings[0]


async def test_model_without_reference_and_metrics_off_have_no_monitor(tmp_path: Path) -> None:
    repo = classifier_repo(tmp_path / "repo")
    scale_model(repo / "scale" / "1" / "model.onnx", 2.0)  # no reference.json
    plain = create_app(ServerSettings(model_repo=repo, drift=DRIFT))
    off = create_app(
        ServerSettings(model_repo=repo, drift=DRIFT, metrics=False, energy={"active_watts": 5})
    )
    monitored = {}
    for app in (plain, off):
        await app.startup()
        try:
            await infer(app, images(40, height=H, width=W))
            monitored[app] = {k: m.window_rows for k, m in app.metrics.drift.items()}
        finally:
            await app.shutdown()
    assert monitored == {plain: {("ocr", "1"): 40}, off: {}}
    assert off.metrics.energy is None
    text = scrape(off)
    assert "tierwise_drift" not in text
    assert "tierwise_energy" not in text


async def test_sample_rate_feeds_a_share_of_the_batches(tmp_path: Path) -> None:
    repo = classifier_repo(tmp_path / "repo")
    app = create_app(ServerSettings(model_repo=repo, drift=DRIFT, drift_sample_rate=0.25))
    await app.startup()
    try:
        for seed in range(8):
            await infer(app, images(40, height=H, width=W, seed=seed))
        assert app.metrics.drift["ocr", "1"].window_rows == 80  # 2 of 8 batches
    finally:
        await app.shutdown()


def test_sample_rate_is_checked() -> None:
    x = images(50, height=H, width=W)
    monitor = DriftMonitor(reference_from_outputs(x, None, output=None, input_name="x"))
    with pytest.raises(ConfigError, match="drift_sample_rate"):
        DriftHook("ocr", "1", monitor, 0.0)
    with pytest.raises(ConfigError, match="drift_sample_rate"):
        load_yaml_settings(None, model_repo=Path("."), drift_sample_rate=1.5)
    with pytest.raises(ConfigError, match=r"drift\.window_rows"):
        load_yaml_settings(None, model_repo=Path("."), drift={"window_rows": 5})


def test_small_batches_are_gathered_before_the_monitor_sees_them() -> None:
    x = images(200, height=H, width=W, seed=5)
    scores = softmax(logits_of(x)).astype(np.float32)
    reference = reference_from_outputs(
        images(600, height=H, width=W), softmax(logits_of(images(600, height=H, width=W))),
        output=PADDLE_OUTPUT, input_name="x",
    )  # fmt: skip
    monitor = DriftMonitor(reference, DriftSettings(window_rows=100, step_rows=20))
    hook = DriftHook("ocr", "1", monitor, 1.0, flush_rows=32)  # the step (20) caps it
    for row in range(19):
        hook({"x": x[row : row + 1]}, {PADDLE_OUTPUT: scores[row : row + 1]})
    assert monitor.window_rows == 0
    hook({"x": x[19:20]}, {PADDLE_OUTPUT: scores[19:20]})
    assert monitor.window_rows == 20
    # another image size cannot join what was gathered: that goes to the monitor first
    hook({"x": x[20:25]}, {PADDLE_OUTPUT: scores[20:25]})
    wide = images(1, height=H, width=W * 2)
    hook({"x": wide}, {PADDLE_OUTPUT: softmax(logits_of(wide)).astype(np.float32)})
    assert monitor.window_rows == 25
    hook.flush()
    assert monitor.window_rows == 26
    # a batch without the scores is the monitor's to ignore, at once
    hook({"x": x[:3]}, {})
    assert monitor.ignored_batches == 1


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_the_monitor_takes_at_most_its_rows_a_second() -> None:
    x = images(400, height=H, width=W, seed=6)
    scores = softmax(logits_of(x)).astype(np.float32)
    reference = reference_from_outputs(x, scores, output=PADDLE_OUTPUT, input_name="x")
    monitor = DriftMonitor(reference, DriftSettings(window_rows=1000, step_rows=10))
    clock = FakeClock()
    hook = DriftHook("ocr", "1", monitor, 1.0, flush_rows=1, max_rows_per_s=50, clock=clock)
    for row in range(0, 200, 10):  # 200 rows at once: the first second's 50 are taken
        hook({"x": x[row : row + 10]}, {PADDLE_OUTPUT: scores[row : row + 10]})
    assert monitor.window_rows == 50
    clock.now_s = 0.5  # half a second later, half a second's rows, in whole batches
    for row in range(200, 300, 10):
        hook({"x": x[row : row + 10]}, {PADDLE_OUTPUT: scores[row : row + 10]})
    assert monitor.window_rows == 70
    clock.now_s = 100.0  # an idle spell refills one second's worth, no more
    for row in range(300, 400, 10):
        hook({"x": x[row : row + 10]}, {PADDLE_OUTPUT: scores[row : row + 10]})
    assert monitor.window_rows == 120
    with pytest.raises(ConfigError, match="drift_max_rows_per_s"):
        DriftHook("ocr", "1", monitor, 1.0, max_rows_per_s=0.0)


def any_size_classifier_repo(root: Path) -> Path:
    """The paddle-like classifier with every dimension but the channels dynamic (not a
    zoo model), and a reference from 600 rows of H x W images."""
    folder = root / "ocr" / "1"
    path = image_classifier(folder / "model.onnx", height=H, width=W)
    graph = onnx.load(path)
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    onnx.save(graph, path)
    x = images(600, height=H, width=W, seed=0)
    ref = reference_from_outputs(x, softmax(logits_of(x)), output=PADDLE_OUTPUT, input_name="x")
    ref.save(folder / REFERENCE_FILE)
    return root


def test_empty_requests_are_skipped_and_drift_goes_on(tmp_path: Path) -> None:
    settings = ServerSettings(model_repo=any_size_classifier_repo(tmp_path / "repo"), drift=DRIFT)
    with running_server(settings) as server, httpx.Client(base_url=server.url) as client:
        empty = np.zeros((0, 3, H, W), np.float32)
        answer = client.post("/v2/models/ocr/infer", json=v2_request(empty))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["shape"] == [0, 2]
        wide = images(5, height=H, width=W * 3, seed=7)  # another size: the model takes it
        assert client.post("/v2/models/ocr/infer", json=v2_request(wide)).status_code == 200
        send(client, images(300, height=H, width=W, seed=1))
        found = drift_series(client.get("/metrics").text)
        monitor = server.app.metrics.drift["ocr", "1"]
    labels = (("model", "ocr"), ("version", "1"))
    assert found["tierwise_drift_window_rows", labels] == 250  # the monitor kept observing
    assert found["tierwise_drift_errors_total", labels] == 0
    assert found["tierwise_drift_level", labels] in (0, 1)
    assert isinstance(monitor, DriftMonitor)
    assert monitor.ignored_batches == 0  # the empty batch was skipped, not ignored


class Flaky(DriftMonitor):
    """A monitor that fails on the batches whose first input value is negative."""

    def observe(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        if inputs["x"].flat[0] < 0:
            raise ValueError("a bad batch")
        super().observe(inputs, outputs)


def test_a_failing_batch_is_counted_and_the_monitor_goes_on() -> None:
    x = images(100, height=H, width=W, seed=8)
    x[:, 0, 0, 0] = np.abs(x[:, 0, 0, 0])
    scores = softmax(logits_of(x)).astype(np.float32)
    reference = reference_from_outputs(x, scores, output=PADDLE_OUTPUT, input_name="x")
    monitor = Flaky(reference, DriftSettings(window_rows=100, step_rows=20, min_rows=20))
    hook = DriftHook("ocr", "1", monitor, 1.0, flush_rows=1)
    bad = -np.ones((2, 3, H, W), np.float32)
    with captured_logs() as messages:
        for _ in range(5):
            hook({"x": bad}, {PADDLE_OUTPUT: scores[:2]})
        hook({"x": x[:0]}, {PADDLE_OUTPUT: scores[:0]})  # no rows: skipped, not an error
        hook({"x": x[:30]}, {PADDLE_OUTPUT: scores[:30]})
    assert monitor.errors == 5
    assert monitor.window_rows == 30  # later batches still observed
    assert monitor.windows == 1
    failures = [m for m in messages if "failed on a batch" in m]
    assert len(failures) == 3  # the 1st, 2nd and 4th: not one line per batch
    assert "(4 so far)" in failures[-1]
    metrics = ServerMetrics()
    metrics.drift["ocr", "1"] = monitor
    found = drift_series(generate_latest(metrics.registry).decode())
    assert found["tierwise_drift_errors_total", (("model", "ocr"), ("version", "1"))] == 5
