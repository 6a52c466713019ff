"""Per-client limits at the gateway: rate limits that hold back one client and no other,
daily budgets that degrade or refuse, privacy and residency floors; and the pure
:class:`ClientGate` on settable clocks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from cascade_helpers import write_plan
from outbox_helpers import FakeClock
from security_helpers import find_secret, tokens_file
from server_helpers import RunningServer, running_app
from tierwise.errors import ConfigError, RateLimitedError
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.clients import DAY_S, ClientGate, ClientLimits
from tierwise.router.gateway import Gateway, GatewaySettings, load_gateway_settings
from tierwise.router.types import RequestMeta
from tierwise.security import AuthSettings
from tierwise.zoo import load_eval

CLIENTS = ("slow", "free", "saver", "miser", "private", "local", "open")


def _body(x: np.ndarray, **parameters: object) -> dict[str, object]:
    tensor = {"name": "image", "shape": list(x.shape), "datatype": "FP32",
              "data": x.ravel().tolist()}  # fmt: skip
    return {"parameters": parameters, "inputs": [tensor]}


@contextmanager
def limited_gateway(
    plan_path: Path, tmp_path: Path, clients: dict[str, ClientLimits]
) -> Iterator[tuple[httpx.Client, dict[str, dict[str, str]]]]:
    path, tokens = tokens_file(tmp_path / "tokens", *((c, "infer,telemetry") for c in CLIENTS))
    plan = load_plan(plan_path)
    settings = GatewaySettings(auth=AuthSettings(tokens_file=path), clients=clients)
    app = Gateway(plan, build_router(plan), settings)
    headers = {c: {"Authorization": f"Bearer {t}"} for c, t in tokens.items()}
    with (
        running_app(app) as (_, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        yield client, headers


@pytest.fixture
def plan_path(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> Path:
    edge, cloud = tier_servers
    return write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)


def test_one_client_over_its_rate_gets_429_and_others_go_on(
    plan_path: Path, shared_zoo_dir: Path, tmp_path: Path
) -> None:
    x, _ = load_eval(shared_zoo_dir)
    limits = {"slow": ClientLimits(rate_per_s=0.1, burst=3), "free": ClientLimits(rate_per_s=1000)}
    with limited_gateway(plan_path, tmp_path, limits) as (client, headers):
        slow: list[httpx.Response] = []
        for i in range(8):
            slow.append(client.post("/v2/models/digits/infer", json=_body(x[i : i + 1]),
                                    headers=headers["slow"]))  # fmt: skip
            for who in ("free", "open"):  # a high limit, and no limit at all
                r = client.post("/v2/models/digits/infer", json=_body(x[i : i + 1]),
                                headers=headers[who])  # fmt: skip
                assert r.status_code == 200, (who, r.text)
        assert [r.status_code for r in slow] == [200] * 3 + [429] * 5
        refused = slow[-1]
        assert int(refused.headers["retry-after"]) >= 1
        assert "'slow'" in refused.json()["error"]
        assert "rate limit" in refused.json()["error"]
        assert find_secret(refused.text) is None
        metrics = client.get("/metrics", headers=headers["free"]).text
        assert 'tierwise_gateway_client_limited_total{client="slow",reason="rate"} 5.0' in metrics


def test_spent_budget_degrades_or_refuses(
    plan_path: Path, shared_zoo_dir: Path, tmp_path: Path
) -> None:
    x, _ = load_eval(shared_zoo_dir)
    limits = {
        "saver": ClientLimits(budget_usd_per_day=0.0),  # spent from the start: degrade
        "miser": ClientLimits(budget_usd_per_day=0.0003, on_budget="refuse"),
    }
    images = x[:200]
    with limited_gateway(plan_path, tmp_path, limits) as (client, headers):
        tiers = {"open": [], "saver": []}  # type: dict[str, list[str]]
        degraded = []
        for image in images:
            for who in tiers:
                r = client.post("/v2/models/digits/infer", json=_body(image[None]),
                                headers=headers[who])  # fmt: skip
                assert r.status_code == 200, r.text
                params = r.json()["parameters"]
                tiers[who].append(params["tier"])
                if who == "saver" and params["degraded"]:
                    degraded.append(params["degraded_reason"])
        assert "cloud" in tiers["open"]  # these images do reach the cloud...
        assert "cloud" not in tiers["saver"]  # ...but not for a client whose budget is spent
        assert degraded
        assert set(degraded) == {"budget"}
        # refuse: answers until the day's spend reaches the budget, then 429 naming it
        statuses = []
        for image in images:
            r = client.post("/v2/models/digits/infer", json=_body(image[None]),
                            headers=headers["miser"])  # fmt: skip
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[0] == 200, statuses
        assert statuses[-1] == 429, statuses
        assert "budget" in r.json()["error"]
        assert "'miser'" in r.json()["error"]
        assert 1 <= int(r.headers["retry-after"]) <= DAY_S
        again = client.post("/v2/models/digits/infer", json=_body(x[:1]), headers=headers["miser"])
        assert again.status_code == 429  # until the day ends


def test_client_privacy_narrows_and_never_widens(
    plan_path: Path, shared_zoo_dir: Path, tmp_path: Path
) -> None:
    x, _ = load_eval(shared_zoo_dir)
    limits = {
        "private": ClientLimits(privacy="sensitive"),  # device only, whatever it asks
        "local": ClientLimits(residency="site"),  # device and the store's edge
        "free": ClientLimits(privacy="public"),  # cannot widen a sensitive workload
    }
    with limited_gateway(plan_path, tmp_path, limits) as (client, headers):
        seen: dict[str, set[str]] = {"private": set(), "local": set(), "free": set(),
                                     "open": set()}  # fmt: skip
        for image in x[:120]:
            for who, workload, asked in (
                ("private", "digits", {"privacy": "public"}),
                ("local", "digits", {"residency": "any"}),
                ("free", "private-digits", {"privacy": "public"}),
                ("open", "digits", {}),
            ):
                r = client.post(f"/v2/models/{workload}/infer", json=_body(image[None], **asked),
                                headers=headers[who])  # fmt: skip
                assert r.status_code == 200, r.text
                seen[who].add(r.json()["parameters"]["tier"])
        assert seen["private"] == {"device"}
        assert seen["free"] == {"device"}
        assert "cloud" not in seen["local"]
        assert "edge" in seen["local"]
        assert "cloud" in seen["open"]  # the same images reach the cloud unlimited


def test_clients_need_tokens_and_settings_read_from_yaml(plan_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="burst"):
        ClientLimits(burst=5)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "port: 9000\nclients:\n  kiosk: {rate_per_s: 5, burst: 10, budget_usd_per_day: 2,"
        " on_budget: refuse, privacy: personal}\nauth: {tokens_file: /nowhere}\n"
    )
    settings = load_gateway_settings(config, port=9001, tokens_file=tmp_path / "t", tls_cert=None)
    assert settings.port == 9001
    assert settings.auth is not None
    assert settings.auth.tokens_file == tmp_path / "t"
    kiosk = settings.clients["kiosk"]
    assert (kiosk.rate_per_s, kiosk.bucket_size, kiosk.on_budget) == (5, 10, "refuse")
    config.write_text("clients:\n  kiosk: {rate_per_s: 0}\n")
    with pytest.raises(ConfigError, match=r"clients\.kiosk\.rate_per_s"):
        load_gateway_settings(config)
    plan = load_plan(plan_path)
    with pytest.raises(ConfigError, match="tokens"):  # limits without tokens limit no one
        Gateway(plan, build_router(plan), GatewaySettings(clients={"kiosk": kiosk}))


def test_bucket_refills_and_budget_resets_at_midnight() -> None:
    mono, wall = FakeClock(100.0), FakeClock(10 * DAY_S + 3600.0)
    gate = ClientGate(
        {"a": ClientLimits(rate_per_s=2, burst=2, budget_usd_per_day=1.0, on_budget="refuse"),
         "b": ClientLimits(budget_usd_per_day=1.0, privacy="personal")},
        clock=mono, wall_clock=wall,
    )  # fmt: skip
    assert gate.admit("a") is not None
    assert gate.admit("a") is not None
    with pytest.raises(RateLimitedError) as refused:
        gate.admit("a")
    assert refused.value.retry_after_s == 1
    mono.now_s += 0.5  # one token back at 2/s
    assert gate.admit("a") is not None
    assert gate.admit("nobody") is None
    assert gate.admit(None) is None
    limits = gate.limits["a"]
    meta = RequestMeta("w")
    gate.charge("a", 0.6)
    assert gate.apply("a", limits, meta) == meta
    gate.charge("a", 0.6)
    with pytest.raises(RateLimitedError, match="budget") as spent:
        gate.apply("a", limits, meta)
    assert spent.value.retry_after_s == DAY_S - 3600
    assert gate.apply("a", limits, meta, accepted=True).budget_spent  # work already taken on
    wall.now_s += DAY_S - 3600  # the next UTC day
    assert gate.apply("a", limits, meta) == meta
    narrowed = gate.apply("b", gate.limits["b"], RequestMeta("w", privacy="public"))
    assert narrowed.privacy == "personal"
    assert not narrowed.budget_spent
    assert gate.apply("b", gate.limits["b"], RequestMeta("w", privacy="sensitive")).privacy == (
        "sensitive"
    )
    gate.charge("nobody", 5.0)  # no entry, no state
    assert gate.ledger.spent(wall.now_s).keys() <= {"a", "b"}
