"""``tierwise observe status`` read straight from the targets' ``/metrics``: a live edge
tier and gateway under traffic, a cloud tier that does not answer (shown as down)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from observe_plans import write_plan
from typer.testing import CliRunner

from cascade_helpers import model_repo
from server_helpers import free_port, running_app, running_server
from tierwise.cli.app import app
from tierwise.errors import ConfigError, TierwiseError
from tierwise.observe import (
    FleetStatus,
    PrometheusSource,
    SnapshotSource,
    gather_status,
    plan_targets,
    status_view,
    workload_slos,
)
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.server import ServerSettings
from tierwise.zoo import load_eval

runner = CliRunner()


def test_status_from_the_targets(shared_zoo_dir: Path, tmp_path: Path) -> None:
    x, _ = load_eval(shared_zoo_dir)
    dead = f"http://127.0.0.1:{free_port()}"
    settings = ServerSettings.model_validate({
        "model_repo": model_repo(shared_zoo_dir, tmp_path, "small"), "tier": "edge",
        "energy": {"rapl": "off", "active_watts": 5.0},
    })  # fmt: skip
    with running_server(settings) as edge:
        plan = load_plan(write_plan(tmp_path / "plan.yaml", edge.url, dead, timeout_s=0.5))
        gateway_app = Gateway(plan, build_router(plan), GatewaySettings())
        with running_app(gateway_app) as (_, port):
            gateway = f"http://127.0.0.1:{port}"
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(base_url=gateway, timeout=10) as client:
                    for image in x[:400]:
                        if stop.is_set():
                            return
                        tensor = {"name": "image", "shape": [1, *image.shape], "datatype": "FP32"}
                        body = {"inputs": [{**tensor, "data": image.ravel().tolist()}]}
                        client.post("/v2/models/digits/infer", json=body)

            thread = threading.Thread(target=load, daemon=True)
            thread.start()
            time.sleep(0.5)
            targets = plan_targets(plan, [gateway])
            status = gather_status(SnapshotSource(targets, sample_s=0.5), workload_slos(plan))
            shown = runner.invoke(
                app, ["observe", "status", "--plan", str(tmp_path / "plan.yaml"),
                      "--gateway", gateway, "--sample-s", "0.2", "--json"],
            )  # fmt: skip
            stop.set()
            thread.join(timeout=30)
    states = {(t.job, t.tier): t for t in status.targets}
    assert states["tierwise-tier", "edge"].up
    assert not states["tierwise-tier", "cloud"].up
    assert states["tierwise-tier", "cloud"].error
    assert states["tierwise-gateway", None].up
    rows = {w["workload"]: w for w in status.workloads}
    assert set(rows) == {"digits", "batch"}
    assert rows["digits"]["rps"] > 0
    assert rows["digits"]["p99_s"] is not None
    assert rows["digits"]["slo_p99_s"] == 0.12
    assert rows["digits"]["fallback_rate"] > 0  # the dead cloud: each escalation falls back
    tiers = {t["tier"]: t for t in status.tiers}
    assert tiers["edge"]["rps"] > 0
    assert tiers["edge"]["joules_per_inference"] > 0
    assert status.alerts is None  # only Prometheus evaluates alerts
    assert shown.exit_code == 0, shown.output
    document: dict[str, Any] = json.loads(shown.stdout)
    assert document["source"] == "targets"
    assert {t["tier"]: t["up"] for t in document["targets"] if t["tier"]} == {
        "edge": True, "cloud": False
    }  # fmt: skip
    _render(status)


def _render(status: FleetStatus) -> None:
    from rich.console import Console

    console = Console(record=True, width=160, file=io.StringIO())
    console.print(status_view(status))
    text = console.export_text()
    assert "down" in text
    assert "digits" in text


def test_status_needs_a_source_and_survives_a_dead_prometheus(tmp_path: Path) -> None:
    result = runner.invoke(app, ["observe", "status"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    dead = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    try:
        with pytest.raises(TierwiseError, match="prometheus"):
            gather_status(dead)
    finally:
        dead.close()


@pytest.mark.parametrize(
    "answer",
    [b"[1, 2]", b'{"status": "success", "data": [1]}', b'{"status": "error", "error": "bad"}',
     b"not json"],
)  # fmt: skip
def test_a_prometheus_that_answers_nonsense_is_a_clear_error(answer: bytes) -> None:
    async def odd_prometheus(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    with running_app(odd_prometheus) as (_, port):
        source = PrometheusSource(f"http://127.0.0.1:{port}", timeout_s=5)
        try:
            with pytest.raises(ConfigError, match="--prometheus"):
                source.query("up")
        finally:
            source.close()
