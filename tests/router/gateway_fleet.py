"""A gateway on loopback in front of a three-tier plan for the metrics, re-evaluation and
device telemetry tests: the device is a real in-process model (``y = x``, from
``onnx_models``: the input sets its confidence), the edge and the cloud are scripted tiers
the test makes slow or failing, or a real tier server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from scripted_tiers import THRESHOLD, URL
from server_helpers import running_app
from tierwise.planfile.schema import Plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.router.settings import RouterSettings
from tierwise.router.tiers import Tier


def tier(kind: str, rtt_ms: float, cost: float, **where: Any) -> dict[str, Any]:
    return {"kind": kind, "rtt_p50_ms": rtt_ms / 2, "rtt_p99_ms": rtt_ms,
            "cost_usd_per_inference": cost, **where}  # fmt: skip


def workload(*names: str, output: str | None = None, **fields: Any) -> dict[str, Any]:
    extra = {} if output is None else {"output": output}
    cascade: list[dict[str, Any]] = [
        {"tier": n, "rule": "max_prob", "threshold": THRESHOLD, **extra} for n in names[:-1]
    ]
    cascade.append({"tier": names[-1], **extra})
    return {"privacy": "public", **fields, "cascade": cascade}


def fleet_plan(
    model: Path, workloads: dict[str, Any], *, cloud_url: str = URL, cloud_model: str = "m"
) -> Plan:
    tiers = {
        "device": tier("device", 0, 0.0, site="s1", region="r1", local={"model": str(model)}),
        "edge": tier("edge", 5, 1e-6, site="s1", region="r1", url=URL, model="m"),
        "cloud": tier("cloud", 20, 1e-5, region="r1", url=cloud_url, model=cloud_model),
    }
    return Plan.model_validate({"tiers": tiers, "workloads": workloads})


def body(x: np.ndarray, name: str = "x", **parameters: object) -> dict[str, object]:
    tensor = {"name": name, "shape": list(x.shape), "datatype": "FP32",
              "data": x.ravel().tolist()}  # fmt: skip
    return {"parameters": parameters, "inputs": [tensor]}


@contextmanager
def running_gateway(
    plan: Plan,
    tiers: dict[str, Tier] | None = None,
    settings: GatewaySettings | None = None,
    router_settings: RouterSettings | None = None,
    seed: int | None = 7,
) -> Iterator[tuple[httpx.Client, Gateway]]:
    router = build_router(plan, tiers=tiers, settings=router_settings, seed=seed)
    app = Gateway(plan, router, settings or GatewaySettings())
    with (
        running_app(app) as (_, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        yield client, app


def samples(metrics: str, name: str, **match: str) -> dict[tuple[str, ...], float]:
    """``{(label values in sorted label order): value}`` of one series, for the samples
    whose labels include ``match``."""
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name and match.items() <= sample.labels.items():
                found[tuple(v for _, v in sorted(sample.labels.items()))] = sample.value
    return found
