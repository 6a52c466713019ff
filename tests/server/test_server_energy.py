"""Energy on the tier server: busy seconds, joules by model and tier (measured from a
fake powercap tree or estimated from a power model), instantaneous power, and the
switches that turn them off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from onnx_models import mixed_model, scale_model
from server_helpers import running_server
from tierwise.cli import serve as serve_cli
from tierwise.errors import ConfigError
from tierwise.protocol import InferRequest
from tierwise.server import ServerSettings, create_app, load_yaml_settings
from tierwise.server.app import TierServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def named(found: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def scrape(app: TierServer) -> Samples:
    return samples(generate_latest(app.metrics.registry).decode())


async def infer(app: TierServer, model: str = "scale", rows: int = 3) -> None:
    served = app.dataplane.admit(model, None)
    x = np.ones((rows, 4), np.float32)
    await app.dataplane.infer(served, InferRequest(inputs={"x": x}))


def repo_with_two_models(root: Path) -> Path:
    scale_model(root / "scale" / "1" / "model.onnx", 2.0)
    scale_model(root / "double" / "1" / "model.onnx", 3.0)
    return root


def powercap(root: Path, uj: int) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").write_text(f"{uj}\n")
    return zone


async def test_estimated_energy_from_the_power_model(tmp_path: Path) -> None:
    settings = ServerSettings(
        model_repo=repo_with_two_models(tmp_path / "repo"),
        tier="shop-edge",
        energy={"idle_watts": 3.0, "active_watts": 7.0, "rapl": "off"},
    )
    app = create_app(settings)
    await app.startup()
    try:
        for _ in range(5):
            await infer(app, "scale")
        await infer(app, "double")
        found = scrape(app)
    finally:
        await app.shutdown()
    busy = named(found, "tierwise_busy_seconds_total")
    joules = named(found, "tierwise_energy_joules_total")
    power = named(found, "tierwise_power_watts")
    scale, double = key(model="scale", tier="shop-edge"), key(model="double", tier="shop-edge")
    assert busy[scale] > 0
    assert busy[double] > 0
    estimated = {"tier": "shop-edge", "source": "estimated"}
    assert joules[key(model="scale", **estimated)] == pytest.approx(7.0 * busy[scale])
    assert joules[key(model="double", **estimated)] == pytest.approx(7.0 * busy[double])
    assert not any(("source", "measured") in labels for labels in joules)
    ((labels, watts),) = power.items()
    assert labels == key(source="estimated", tier="shop-edge")
    assert 3.0 <= watts <= 7.0


async def test_measured_energy_from_powercap(tmp_path: Path) -> None:
    zone = powercap(tmp_path / "powercap", 1_000_000)
    settings = ServerSettings(
        model_repo=repo_with_two_models(tmp_path / "repo"),
        energy={"rapl": tmp_path / "powercap", "window_s": 0.001, "active_watts": 9.0},
    )
    app = create_app(settings)
    await app.startup()
    try:
        await infer(app, "scale")
        (zone / "energy_uj").write_text("6000000\n")  # 5 J more
        await asyncio.sleep(0.01)  # past the window
        await infer(app, "scale")
        found = scrape(app)
    finally:
        await app.shutdown()
    joules = named(found, "tierwise_energy_joules_total")
    measured = joules[(("model", "scale"), ("source", "measured"), ("tier", "local"))]
    assert 0.0 < measured <= 5.0  # the busy share of the window's 5 J
    assert joules[(("model", "double"), ("source", "measured"), ("tier", "local"))] == 0.0
    assert not any(("source", "estimated") in labels for labels in joules)
    assert set(named(found, "tierwise_power_watts")) == {
        (("source", "measured"), ("tier", "local"))
    }


async def test_without_counter_or_power_model_only_busy_seconds(tmp_path: Path) -> None:
    settings = ServerSettings(
        model_repo=repo_with_two_models(tmp_path / "repo"), energy={"rapl": tmp_path / "none"}
    )
    app = create_app(settings)
    await app.startup()
    try:
        await infer(app)
        found = scrape(app)
    finally:
        await app.shutdown()
    assert named(found, "tierwise_busy_seconds_total")[(("model", "scale"), ("tier", "local"))] > 0
    assert not named(found, "tierwise_energy_joules_total")
    assert not named(found, "tierwise_power_watts")


async def test_energy_off_and_metrics_off(tmp_path: Path) -> None:
    repo = repo_with_two_models(tmp_path / "repo")
    no_energy = create_app(
        ServerSettings(model_repo=repo, energy={"enabled": False, "active_watts": 5.0})
    )
    no_metrics = create_app(ServerSettings(model_repo=repo, metrics=False))
    for app in (no_energy, no_metrics):
        await app.startup()
        try:
            await infer(app)
            found = scrape(app)
        finally:
            await app.shutdown()
        assert not named(found, "tierwise_energy_joules_total")
        ok = (("model", "scale"), ("outcome", "success"), ("version", "1"))
        assert named(found, "tierwise_requests_total")[ok] == 1.0  # requests still count
        if app is no_energy:
            assert named(found, "tierwise_busy_seconds_total")
        else:
            assert not named(found, "tierwise_busy_seconds_total")
            assert named(found, "tierwise_batch_size_count")[key(model="scale", version="1")] == 0


def test_metrics_endpoint_exports_energy_series(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    mixed_model(repo / "mixed" / "1" / "model.onnx")  # several inputs and dtypes
    settings = ServerSettings(
        model_repo=repo, tier="cloud-gpu", energy={"active_watts": 300.0, "rapl": "off"}
    )
    body = {
        "inputs": [
            {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
            {"name": "b", "shape": [1, 3], "datatype": "FP16", "data": [1, 2, 3]},
            {"name": "c", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "d", "shape": [1, 2], "datatype": "BOOL", "data": [True, False]},
            {"name": "e", "shape": [1, 4], "datatype": "UINT8", "data": [1, 2, 3, 4]},
            {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]},
        ]
    }
    with running_server(settings) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/v2/models/mixed/infer", json=body).status_code == 200
        text = client.get("/metrics").text
    assert "# TYPE tierwise_energy_joules_total counter" in text
    assert "# TYPE tierwise_busy_seconds_total counter" in text
    assert "# TYPE tierwise_power_watts gauge" in text
    found = samples(text)
    key = (("model", "mixed"), ("source", "estimated"), ("tier", "cloud-gpu"))
    assert named(found, "tierwise_energy_joules_total")[key] > 0


def test_energy_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="active_watts: expected watts >= idle_watts"):
        load_yaml_settings(None, model_repo=".", energy={"idle_watts": 5, "active_watts": 3})
    with pytest.raises(ConfigError, match="active_watts: expected watts > 0 when idle_watts"):
        load_yaml_settings(None, model_repo=".", energy={"idle_watts": 5})
    with pytest.raises(ConfigError, match="peak_watts"):
        load_yaml_settings(None, model_repo=".", energy={"active_watts": 5, "peak_watts": 4})
    with pytest.raises(ConfigError, match="tier"):
        load_yaml_settings(None, model_repo=".", tier="two words")
    settings = load_yaml_settings(None, model_repo=".", energy={"active_watts": 7})
    power = settings.energy.power_model()
    assert power is not None
    assert (power.idle_watts, power.active_watts) == (0.0, 7.0)
    assert settings.energy.rapl_root() == Path("/sys/class/powercap")
    assert (
        load_yaml_settings(None, model_repo=".", energy={"rapl": "off"}).energy.rapl_root() is None
    )


def test_serve_cli_passes_tier_and_power_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[ServerSettings] = []

    def fake_run(settings: ServerSettings, **_: Any) -> bool:
        seen.append(settings)
        return True

    monkeypatch.setattr(serve_cli, "run_server", fake_run)
    serve_cli.serve(
        model_repo=tmp_path, tier="store-edge", idle_watts=3.0, active_watts=7.0, rapl="off"
    )
    serve_cli.serve(model_repo=tmp_path, no_energy=True)
    first, second = seen
    assert first.tier == "store-edge"
    assert (first.energy.idle_watts, first.energy.active_watts) == (3.0, 7.0)
    assert first.energy.rapl_root() is None
    assert second.tier == "local"
    assert not second.energy.enabled
