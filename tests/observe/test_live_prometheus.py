"""A real Prometheus scrapes a fleet on loopback through the rendered configuration.

Edge and cloud tier servers (energy estimated from a power model, drift monitored against
the zoo's references), a gateway routing a plan over them (with an outbox and device
telemetry) and an edge agent run in this process; ``tierwise observe render`` writes the
files for that plan, and ``/usr/bin/prometheus`` runs them on a free port with a
throwaway storage folder and one-second intervals. While traffic flows, every panel query
of the dashboard and the measured side of every alert must return series through the
HTTP API; then the cloud tier stops and the fallback alert must fire, as
``/api/v1/alerts`` shows it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from observe_plans import write_plan
from typer.testing import CliRunner

from agent_helpers import make_release, node_settings, running_node
from binaries import require_binary
from prometheus_helpers import running_prometheus
from server_helpers import running_app, running_server
from tierwise.cli.app import app
from tierwise.observe import (
    AlertRule,
    ObserveSettings,
    PrometheusSource,
    gather_status,
    render_plan,
    workload_slos,
    write_rendered,
)
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.router.settings import RouterSettings
from tierwise.server import ServerSettings
from tierwise.zoo import load_eval

runner = CliRunner()
SETTINGS = ObserveSettings(
    scrape_interval_s=1, evaluation_interval_s=1, rate_window_s=15, alert_for_s=1,
    energy_baseline_window_s=60, fallback_rate=0.05,
)  # fmt: skip
#: hedge an edge answer slower than 1 ms to the cloud (so hedges are counted)
HEDGE = RouterSettings(hedge_after_ms=1.0)
#: what Grafana's variables stand for when the panels' queries are run here
PANEL_WINDOW = "15s"


def _repo(zoo: Path, root: Path, variant: str) -> Path:
    """A one-model repository with the zoo's model and its drift reference."""
    folder = root / f"repo-{variant}" / variant / "1"
    folder.mkdir(parents=True)
    for name in ("model.onnx", "reference.json"):
        shutil.copy(zoo / variant / "1" / name, folder / name)
    return folder.parents[1]


def _server_settings(repo: Path, tier: str, watts: float) -> ServerSettings:
    return ServerSettings.model_validate({
        "model_repo": repo, "tier": tier,
        "energy": {"rapl": "off", "idle_watts": watts / 2, "active_watts": watts},
        "drift": {"window_rows": 20, "min_rows": 20, "step_rows": 5},
        "drift_sample_rate": 1.0,
    })  # fmt: skip


def _body(image: np.ndarray) -> dict[str, Any]:
    tensor = {"name": "image", "shape": [1, *image.shape], "datatype": "FP32"}
    return {"inputs": [{**tensor, "data": image.ravel().tolist()}]}


class Load:
    """Requests to the gateway from a background thread until stopped."""

    def __init__(self, url: str, images: np.ndarray) -> None:
        self.url, self.images = url, images
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                image = self.images[i % len(self.images)]
                body = _body(image)
                self.statuses.append(client.post("/v2/models/digits/infer", json=body).status_code)
                i += 1
                time.sleep(0.02)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _query(prom: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(prom + "/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", (promql, answer)
    return answer["data"]["result"]  # type: ignore[no-any-return]


def _queries(rendered_dir: Path, rules: list[AlertRule]) -> dict[str, str]:
    """Every panel target and the measured side of every alert, by a name to report."""
    out = {}
    dashboard = json.loads((rendered_dir / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", PANEL_WINDOW)
            out[f"panel {panel['title']!r} {target['refId']}"] = expr.replace("$workload", ".*")
    written = yaml.safe_load((rendered_dir / "alerts.yml").read_text())["groups"][0]["rules"]
    assert [r["expr"] for r in written] == [r.expr for r in rules]
    for i, rule in enumerate(rules):
        assert rule.expr.startswith(rule.query)
        out[f"alert {rule.alert} #{i}"] = rule.query  # the measured side, no comparison
    return out


def _wait_for(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.5)


def test_a_real_prometheus_answers_every_panel_and_alert(
    shared_zoo_dir: Path, tmp_path: Path
) -> None:
    require_binary("prometheus")
    x, _ = load_eval(shared_zoo_dir)
    thermal = tmp_path / "temp"
    thermal.write_text("47.5\n")
    with ExitStack() as stack:
        edge = stack.enter_context(
            running_server(_server_settings(_repo(shared_zoo_dir, tmp_path, "small"), "edge", 5.0))
        )
        cloud_stack = stack.enter_context(ExitStack())
        cloud_settings = _server_settings(_repo(shared_zoo_dir, tmp_path, "large"), "cloud", 300)
        cloud = cloud_stack.enter_context(running_server(cloud_settings))
        plan_path = write_plan(tmp_path / "plan.yaml", edge.url, cloud.url, timeout_s=1.0)
        reeval = "    reeval: {rate: 1.0, tier: cloud, max_in_flight: 8}\n"
        slo = "    slo_p99_ms: 120\n"
        plan_path.write_text(plan_path.read_text().replace(slo, slo + reeval))
        plan = load_plan(plan_path)
        gateway_app = Gateway(plan, build_router(plan, settings=HEDGE), GatewaySettings(
            outbox_path=tmp_path / "outbox.db", drain_poll_s=0.2))  # fmt: skip
        _, gateway_port = stack.enter_context(running_app(gateway_app))
        gateway = f"http://127.0.0.1:{gateway_port}"
        release = make_release(tmp_path, shared_zoo_dir)
        node = stack.enter_context(running_node(node_settings(
            tmp_path, release, thermal={"source": thermal, "poll_s": 0.2})))  # fmt: skip

        rendered = render_plan(plan, SETTINGS, gateways=[gateway], agents=[node.url])
        out = tmp_path / "rendered"
        write_rendered(rendered, out)
        prom = stack.enter_context(running_prometheus(out / "prometheus.yml", tmp_path / "tsdb"))
        load = stack.enter_context(Load(gateway, x[:200]))

        # a device class reports its window (counts, latency and a drift score)
        report = {"device_class": "phone", "workload": "digits", "window_s": 60,
                  "counts": {"answered": 40}, "drift": {"confidence/psi": 0.02},
                  "latency_ms": {"bounds": [5, 10, 50], "counts": [30, 5, 4, 1]}}  # fmt: skip
        sent = httpx.post(gateway + "/v2/telemetry/device", json=report, timeout=10)
        assert sent.status_code in (200, 202, 204), sent.text

        targets = _wait_for("every target up", lambda: (
            len(r := _query(prom, "up")) == 4 and all(s["value"][1] == "1" for s in r)
        ), 20)  # fmt: skip
        assert targets

        # an outage: the cloud stops, a deferrable request waits in the outbox
        cloud_stack.close()
        deferred = httpx.post(gateway + "/v2/models/batch/infer", json=_body(x[0]), timeout=10)
        assert deferred.status_code == 202, deferred.text

        queries = _queries(out, rendered.rules)
        missing: dict[str, str] = {}

        def all_answer() -> bool:
            missing.clear()
            for name, promql in queries.items():
                if not _query(prom, promql):
                    missing[name] = promql
            return not missing

        try:
            _wait_for("every query has series", all_answer, 30)
        except AssertionError:
            raise AssertionError(
                "queries without series:\n" + "\n".join(f"{k}: {v}" for k, v in missing.items())
            ) from None

        def firing() -> list[dict[str, Any]]:
            alerts = httpx.get(prom + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
            wanted = {"alertname": "TierwiseFallbackSpike", "workload": "digits"}
            return [
                a for a in alerts
                if a["state"] == "firing" and wanted.items() <= a["labels"].items()
            ]  # fmt: skip

        alert = _wait_for("TierwiseFallbackSpike firing", firing, 30)[0]
        with PrometheusSource(prom, window_s=15) as source:
            status = gather_status(source, workload_slos(plan))
        shown = runner.invoke(app, ["observe", "status", "--prometheus", prom])
    assert shown.exit_code == 0, shown.output
    assert "TierwiseFallbackSpike" in shown.stdout
    assert "firing" in shown.stdout
    (digits,) = [w for w in status.workloads if w["workload"] == "digits"]
    assert digits["rps"] > 1
    assert digits["slo_p99_s"] == 0.12
    assert digits["fallback_rate"] > SETTINGS.fallback_rate
    tiers = {t["tier"]: t for t in status.tiers}
    assert tiers["edge"]["joules_per_inference"] > 0
    assert tiers["edge"]["power_watts"] > 0
    assert tiers["edge"]["drift_level"] is not None
    assert {(t.tier, t.up) for t in status.targets if t.tier} == {("edge", True), ("cloud", False)}
    assert any(a["alert"] == "TierwiseFallbackSpike" for a in status.alerts or [])
    assert status.outbox
    labels = alert["labels"]
    assert labels["workload"] == "digits"
    assert labels["tier"] == "cloud"
    assert labels["severity"] == "warning"
    assert float(alert["value"]) > SETTINGS.fallback_rate
    assert any(s == 200 for s in load.statuses)
    print(
        f"\nALERT {labels['alertname']} firing since {alert['activeAt']} "
        f"(severity={labels['severity']}, workload={labels['workload']}, "
        f"tier={labels['tier']}, value={float(alert['value']):.2f}): "
        f"{alert['annotations']['summary']} — {alert['annotations']['description']}"
    )
