"""The gates' PromQL against a real Prometheus: two tier servers on loopback stand for a
canary pod and a baseline pod (Prometheus gives each the ``pod`` label the Prometheus
Operator would), requests flow to both, and the gates' queries, as Flagger fills them in,
return measured numbers through the HTTP API (p99, error rate, energy: the series tier
servers export), or the neutral value where only routers export the series."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from prometheus_helpers import running_prometheus
from server_helpers import running_server
from tierwise.control.gates import GATES, Gate
from tierwise.deploy import gate_query
from tierwise.deploy.progressive import FLAGGER_COHORTS
from tierwise.server import ServerSettings
from tierwise.zoo import load_eval

PODS = {"canary": "reid-cloud-7c9f8d-x1", "baseline": "reid-cloud-primary-5b6d4c-y2"}


def _repo(zoo: Path, root: Path) -> Path:
    folder = root / "repo" / "small" / "1"
    folder.mkdir(parents=True)
    shutil.copy(zoo / "small" / "1" / "model.onnx", folder / "model.onnx")
    return folder.parents[1]


def _settings(repo: Path, watts: float) -> ServerSettings:
    return ServerSettings.model_validate({
        "model_repo": repo, "tier": "cloud",
        "energy": {"rapl": "off", "idle_watts": watts / 2, "active_watts": watts},
    })  # fmt: skip


def _query(prom: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(prom + "/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", (promql, answer)
    return answer["data"]["result"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_gates_read_a_real_prometheus(shared_zoo_dir: Path, tmp_path: Path) -> None:
    repo = _repo(shared_zoo_dir, tmp_path)
    images, _ = load_eval(shared_zoo_dir)
    with (
        running_server(_settings(repo, 20.0)) as canary,
        running_server(_settings(repo, 10.0)) as baseline,
    ):
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "tiers", "scrape_timeout": "1s",
                "static_configs": [
                    {"targets": [canary.host_port], "labels": {"pod": PODS["canary"]}},
                    {"targets": [baseline.host_port], "labels": {"pod": PODS["baseline"]}},
                ],
            }],
        }  # fmt: skip
        with running_prometheus(config, tmp_path / "prom") as prom:
            queries = {
                name: gate_query(Gate(name, spec.default_limit), *FLAGGER_COHORTS, "15s")
                .replace("{{ target }}", "reid-cloud")
                for name, spec in GATES.items()
            }  # fmt: skip
            # the series tier servers export; agreement and fallbacks are the routers'
            measured = {n: queries[n].rsplit(" or vector(", 1)[0]
                        for n in ("p99_ratio", "error_rate_delta", "energy_ratio")}  # fmt: skip
            values: dict[str, float] = {}
            deadline = time.monotonic() + 60
            with httpx.Client(timeout=10) as client:
                i = 0
                while len(values) < len(measured) and time.monotonic() < deadline:
                    image = images[i % len(images)]
                    tensor = {"name": "image", "shape": [1, *image.shape], "datatype": "FP32"}
                    body = {"inputs": [{**tensor, "data": image.ravel().tolist()}]}
                    for server in (canary, baseline):
                        answer = client.post(f"{server.url}/v2/models/small/infer", json=body)
                        assert answer.status_code == 200, answer.text
                    i += 1
                    if i % 20 == 0:
                        for name, promql in measured.items():
                            found = _query(prom, promql)
                            if len(found) == 1 and math.isfinite(float(found[0]["value"][1])):
                                values[name] = float(found[0]["value"][1])
                    time.sleep(0.01)
            assert set(values) == set(measured), {n: _query(prom, q) for n, q in measured.items()}
            assert values["error_rate_delta"] == 0.0
            assert values["p99_ratio"] > 0
            # the canary draws twice the power for the same work: its energy ratio shows it
            assert values["energy_ratio"] > 1.2, values
            # without router series on either side: the neutral value, so the gates pass
            for name, neutral in (("agreement_delta", 0.0), ("fallback_delta", 0.0)):
                (found,) = _query(prom, queries[name])
                assert float(found["value"][1]) == neutral
