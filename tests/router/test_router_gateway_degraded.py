"""The gateway when the cloud dies under load: every request still gets a 200, the answers
below the bar say so, and the gateway's request counter and the router's request, degraded
and fallback counters hold what the responses said. And V2's ``timeout`` parameter is the
request's deadline at the gateway too: 408 once passed, as from a tier server, and passed
on to the tiers."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cascade_helpers import model_repo, write_plan
from scripted_tiers import Scripted
from server_helpers import RunningServer, running_app, server_process
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.router.tiers import Tier
from tierwise.zoo import load_eval


def _body(x: np.ndarray, **parameters: object) -> dict[str, object]:
    tensor = {"name": "image", "shape": list(x.shape), "datatype": "FP32",
              "data": x.ravel().tolist()}  # fmt: skip
    return {"id": "g-1", "parameters": parameters, "inputs": [tensor]}


@contextmanager
def gateway(plan_path: Path, tiers: dict[str, Tier] | None = None) -> Iterator[httpx.Client]:
    plan = load_plan(plan_path)
    app = Gateway(plan, build_router(plan, tiers=tiers), GatewaySettings())
    with (
        running_app(app) as (_, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        yield client


def _samples(metrics: str, name: str) -> dict[tuple[str, ...], float]:
    """``{(label values in sorted label order): value}`` of one counter."""
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(v for _, v in sorted(sample.labels.items()))] = sample.value
    return found


def test_killing_the_cloud_degrades_answers_and_the_counters_agree(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    edge, _ = tier_servers
    x, _ = load_eval(shared_zoo_dir)
    images = x[:60]
    repo = model_repo(shared_zoo_dir, tmp_path, "large")
    with server_process(repo) as cloud:
        plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
        with gateway(plan) as client:

            def ask() -> list[dict[str, Any]]:
                answers = []
                for image in images:
                    response = client.post("/v2/models/digits/infer", json=_body(image[None]))
                    assert response.status_code == 200, response.text
                    answers.append(response.json()["parameters"])
                return answers

            before = ask()
            cloud.process.send_signal(signal.SIGKILL)
            cloud.process.wait(timeout=10)
            after = ask()
            metrics = client.get("/metrics").text

    assert not any(p["degraded"] for p in before)
    assert any(p["tier"] == "cloud" for p in before)
    for was, now in zip(before, after, strict=True):
        if was["tier"] == "cloud":  # needed the cloud: now below the bar, and says why
            assert now["tier"] in ("device", "edge")
            assert now["degraded"] is True
            assert now["degraded_reason"] in ("partition", "breaker_open")
        else:  # settled below the cloud: the same ordinary answer
            assert (now["tier"], now["degraded"]) == (was["tier"], False)
            assert "degraded_reason" not in now

    said = Counter((p["tier"], "degraded" if p["degraded"] else "answered") for p in before + after)
    requests = _samples(metrics, "tierwise_gateway_requests_total")
    assert requests == {
        (outcome, tier, "digits"): float(count) for (tier, outcome), count in said.items()
    }
    reasons = Counter((p["degraded_reason"], p["tier"]) for p in after if p["degraded"])
    degraded = _samples(metrics, "tierwise_router_degraded_total")
    assert degraded == {
        (cause, tier, "digits"): float(count) for (cause, tier), count in reasons.items()
    }
    assert sum(degraded.values()) == sum(p["degraded"] for p in after) > 0
    # each degraded answer reached the dead cloud: a fallback of the cloud stage, by cause
    fallbacks = _samples(metrics, "tierwise_router_fallbacks_total")
    lost = Counter(p["degraded_reason"] for p in after if p["degraded"])
    assert fallbacks == {(cause, "cloud", "digits"): float(n) for cause, n in lost.items()}
    routed = _samples(metrics, "tierwise_router_requests_total")
    assert routed == requests  # the router saw what the gateway answered


@pytest.mark.parametrize(
    ("parameters", "status", "message"),
    [
        ({"timeout": 1}, 408, "deadline of 1 us passed"),
        ({"timeout": 1.5}, 400, "'timeout' must be an integer number of microseconds"),
        ({"timeout": -1}, 400, "'timeout' must be an integer number of microseconds"),
        ({"timeout": 30_000_000}, 200, None),
        ({"timeout": 0}, 200, None),
    ],
)
def test_the_timeout_parameter_gets_what_a_tier_server_gives(
    shared_zoo_dir: Path,
    tier_servers: tuple[RunningServer, RunningServer],
    tmp_path: Path,
    parameters: dict[str, Any],
    status: int,
    message: str | None,
) -> None:
    edge, cloud = tier_servers
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
    x, _ = load_eval(shared_zoo_dir)
    body = _body(x[:1], **parameters)
    direct = httpx.post(f"{edge.url}/v2/models/small/infer", json=body, timeout=30)
    assert direct.status_code == status, direct.text
    with gateway(plan) as client:
        routed = client.post("/v2/models/digits/infer", json=body)
    assert routed.status_code == status, routed.text
    if message is not None:
        assert message in routed.json()["error"]
        assert message in direct.json()["error"]


def test_a_tighter_deadline_reaches_the_remote_tiers(shared_zoo_dir: Path, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, url, url)
    plan.write_text(
        plan.read_text()
        + """
  remote:
    privacy: public
    cascade:
      - {tier: cloud}
"""
    )
    x, _ = load_eval(shared_zoo_dir)
    cloud = Scripted("cloud", "cloud", y=np.zeros((1, 10), np.float32))
    with gateway(plan, tiers={"cloud": cloud}) as client:
        for parameters in (
            {},
            {"timeout": 200_000},
            {"timeout": 200_000, "deadline_ms": 50},
            {"deadline_ms": 900, "timeout": 0},
        ):
            response = client.post("/v2/models/remote/infer", json=_body(x[:1], **parameters))
            assert response.status_code == 200, response.text
    no_deadline, timeout, tighter, deadline_only = (s.get("timeout") for s in cloud.seen)
    assert no_deadline is None
    assert 0 < timeout <= 200_000
    assert 0 < tighter <= 50_000
    assert 0 < deadline_only <= 900_000
