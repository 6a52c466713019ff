"""The gateway: a V2 front with the router inside, and deferred work that waits out a
cloud outage in the outbox and is delivered once the cloud is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from cascade_helpers import model_repo, write_plan
from server_helpers import RunningServer, free_port, running_app, running_server
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.server import ServerSettings
from tierwise.zoo import load_eval


def _body(x: np.ndarray, **parameters: object) -> dict[str, object]:
    tensor = {"name": "image", "shape": list(x.shape), "datatype": "FP32",
              "data": x.ravel().tolist()}  # fmt: skip
    return {"id": "g-1", "parameters": parameters, "inputs": [tensor]}


@contextmanager
def gateway(plan_path: Path, outbox: Path | None = None) -> Iterator[str]:
    plan = load_plan(plan_path)
    settings = GatewaySettings(outbox_path=outbox, drain_poll_s=0.1)
    app = Gateway(plan, build_router(plan), settings)
    with running_app(app) as (_, port):
        yield f"http://127.0.0.1:{port}"


def test_gateway_routes_and_reports_the_tier(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    edge, cloud = tier_servers
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
    x, _ = load_eval(shared_zoo_dir)
    with gateway(plan) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/v2/health/ready").status_code == 200
        seen = set()
        for image in x[:60]:
            r = client.post("/v2/models/digits/infer", json=_body(image[None]))
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["id"] == "g-1"
            assert doc["model_name"] == "digits"  # the workload the client asked for
            params = doc["parameters"]
            assert params["model"] in ("device", "small", "large")  # what answered
            assert params["tier"] in ("device", "edge", "cloud")
            assert params["degraded"] is False
            assert len(params["trace_id"]) == 16
            seen.add(params["tier"])
        assert {"device", "edge"} <= seen
        bad = client.post("/v2/models/digits/infer", json=_body(x[:1], privacy="secret"))
        assert bad.status_code == 400
        assert "privacy" in bad.json()["error"]
        unknown = client.post("/v2/models/nope/infer", json=_body(x[:1]))
        assert unknown.status_code == 404
        assert "unknown workload 'nope'; the plan has digits" in unknown.json()["error"]
        assert client.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
        assert client.get("/v2/models/nope/ready").status_code == 404
        metrics = client.get("/metrics").text
        assert 'tierwise_gateway_requests_total{outcome="answered"' in metrics


def test_deferrable_work_waits_out_a_cloud_outage(shared_zoo_dir: Path, tmp_path: Path) -> None:
    cloud_port = free_port()
    cloud_url = f"http://127.0.0.1:{cloud_port}"
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, cloud_url, cloud_url)
    text = (
        plan.read_text()
        + """
  batch:
    privacy: public
    urgency: deferrable
    cascade:
      - {tier: cloud}
"""
    )
    plan.write_text(text)
    x, _ = load_eval(shared_zoo_dir)
    with gateway(plan, outbox=tmp_path / "outbox.db") as url, httpx.Client(base_url=url) as client:
        accepted = client.post("/v2/models/batch/infer", json=_body(x[:2], idempotency_key="k-1"))
        assert accepted.status_code == 202, accepted.text
        item = accepted.json()
        assert item["status"] == "deferred"
        again = client.post("/v2/models/batch/infer", json=_body(x[:2], idempotency_key="k-1"))
        assert again.json()["id"] == item["id"]  # the same key is queued once
        status = client.get(item["result_url"]).json()
        assert status["status"] in ("pending", "leased")

        repo = model_repo(shared_zoo_dir, tmp_path, "large")
        with running_server(ServerSettings(model_repo=repo), port=cloud_port):
            deadline = time.monotonic() + 30
            while (status := client.get(item["result_url"]).json())["status"] != "done":
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
            time.sleep(0.5)  # room for a duplicate delivery, were there one
            metrics = httpx.get(cloud_url + "/metrics").text
        ran = [
            line for line in metrics.splitlines()
            if line.startswith("tierwise_requests_total") and 'outcome="success"' in line
        ]  # fmt: skip
        assert [float(line.rsplit(" ", 1)[1]) for line in ran] == [1.0]  # acted on once
        result = status["result"]
        assert result["parameters"]["tier"] == "cloud"
        labels = {o["name"]: o for o in result["outputs"]}["label"]["data"]
        assert len(labels) == 2
        missing = client.get("/v2/outbox/does-not-exist")
        assert missing.status_code == 404
