"""Who may call the gateway: scopes per endpoint (401 / 403 / 200), the outbox answering
only the client that queued an item, HTTPS with the test CA, and the exposure check of
``tierwise gateway`` bound beyond loopback."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import security_helpers
from cascade_helpers import write_plan
from security_helpers import find_secret, new_token, tokens_file
from server_helpers import RunningServer, free_port, running_app
from tierwise.outbox import SqliteQueue
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.gateway import DEFERRED_TIER, Gateway, GatewaySettings
from tierwise.security import AuthSettings

BODY = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32",
                    "data": [0.0] * 64}]}  # fmt: skip
GRANTS = (("app", "infer"), ("app2", "infer"), ("ops", "infer,admin"), ("prom", "telemetry"))


@contextmanager
def guarded_gateway(
    plan_path: Path, tmp_path: Path
) -> Iterator[tuple[str, Gateway, dict[str, str]]]:
    path, tokens = tokens_file(tmp_path / "tokens", *GRANTS)
    plan = load_plan(plan_path)
    settings = GatewaySettings(
        outbox_path=tmp_path / "outbox.db", auth=AuthSettings(tokens_file=path)
    )
    app = Gateway(plan, build_router(plan), settings)
    with running_app(app) as (_, port):
        yield f"http://127.0.0.1:{port}", app, tokens


def _auth(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def test_every_endpoint_needs_its_scope(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    edge, cloud = tier_servers
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
    ghost, _ = new_token("ghost", "infer,admin,telemetry")  # in no tokens file
    with guarded_gateway(plan, tmp_path) as (url, app, tokens):
        assert isinstance(app.queue, SqliteQueue)
        item = app.queue.outbox.put(
            DEFERRED_TIER, b"{}", meta={"workload": "digits", "client": "app"}
        )
        endpoints = [
            ("POST", "/v2/models/digits/infer", "infer", "prom"),
            ("GET", "/v2/models/digits/ready", "infer", "prom"),
            ("GET", "/v2", "infer", "prom"),
            ("GET", f"/v2/outbox/{item}", "infer", "prom"),
            ("GET", "/metrics", "telemetry", "app"),
        ]
        with httpx.Client(base_url=url, timeout=10) as client:
            for method, path, scope, lacking in endpoints:
                expected_ok = "prom" if scope == "telemetry" else "app"
                cases = [(None, 401), (ghost, 401), (tokens[lacking], 403),
                         (tokens[expected_ok], 200)]  # fmt: skip
                for token, status in cases:
                    r = client.request(
                        method, path, json=BODY if method == "POST" else None,
                        headers=_auth(token),
                    )  # fmt: skip
                    assert r.status_code == status, (method, path, token is None, r.text)
                    assert find_secret(r.text) is None
                    assert find_secret(str(r.headers)) is None
                    if status == 401:
                        assert scope in r.headers["www-authenticate"]
                    if status == 403:
                        assert f"needs scope {scope!r}" in r.json()["error"]
            for path in ("/v2/health/live", "/v2/health/ready"):
                assert client.get(path).status_code == 200  # probes stay open
            # the outbox answers the client that queued the item, and admins
            assert client.get(f"/v2/outbox/{item}", headers=_auth(tokens["ops"])).status_code == 200
            other = client.get(f"/v2/outbox/{item}", headers=_auth(tokens["app2"]))
            assert other.status_code == 404
            unknown = client.get("/v2/outbox/nope", headers=_auth(tokens["app2"]))
            assert other.json()["error"].replace(item, "nope") == unknown.json()["error"]


def _gateway_cli(plan: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tierwise", "gateway", "--plan", str(plan),
            "--port", str(port), *extra]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


@contextmanager
def _started(argv: list[str], ready_url: str, log: Path, **client: object) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(ready_url, timeout=1, **client).status_code == 200:  # type: ignore[arg-type]
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_unguarded_wildcard_bind_refuses_to_start(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    edge, cloud = tier_servers
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
    done = subprocess.run(
        _gateway_cli(plan, free_port(), "--host", "0.0.0.0"),
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert done.returncode != 0
    assert "0.0.0.0" in done.stderr
    assert "--insecure" in done.stderr
    assert "Traceback" not in done.stderr


def test_insecure_wildcard_bind_warns_first(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    edge, cloud = tier_servers
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
    port = free_port()
    log = tmp_path / "gateway.log"
    argv = _gateway_cli(plan, port, "--host", "0.0.0.0", "--insecure")
    with _started(argv, f"http://127.0.0.1:{port}/v2/health/ready", log):
        meta = httpx.get(f"http://127.0.0.1:{port}/v2", timeout=5).json()
        assert meta["insecure"] is True
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert "INSECURE" in lines[0]
    assert "0.0.0.0" in lines[0]


def test_tls_gateway_with_tokens_on_the_wildcard(
    shared_zoo_dir: Path, tier_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    edge, cloud = tier_servers
    plan = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, edge.url, cloud.url)
    ca = security_helpers.TestCA(tmp_path / "ca")
    pem = ca.issue("gateway")
    tokens_path, tokens = tokens_file(tmp_path / "tokens", ("app", "infer"))
    port = free_port()
    log = tmp_path / "gateway.log"
    argv = _gateway_cli(plan, port, "--host", "0.0.0.0", "--tls-cert", str(pem.cert),
                        "--tls-key", str(pem.key), "--tokens-file", str(tokens_path))  # fmt: skip
    verify = ssl.create_default_context(cafile=str(ca.ca_file))
    base = f"https://127.0.0.1:{port}"
    with _started(argv, f"{base}/v2/health/ready", log, verify=verify):
        with httpx.Client(base_url=base, verify=verify, timeout=10) as client:
            assert client.post("/v2/models/digits/infer", json=BODY).status_code == 401
            r = client.post("/v2/models/digits/infer", json=BODY, headers=_auth(tokens["app"]))
            assert r.status_code == 200, r.text
            assert r.json()["model_name"] == "digits"
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(f"{base}/v2/health/ready", timeout=5)
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5)
    text = log.read_text()
    assert "INSECURE" not in text
    assert find_secret(text) is None
