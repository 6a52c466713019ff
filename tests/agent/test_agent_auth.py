"""Access to an edge node: scoped tokens on every endpoint (the agent's, the tier
server's and the gateway's), the ``control_token_env`` shorthand, the audit trail of
admin actions, TLS, an https control plane, and the refusal to run unguarded beyond
loopback."""

from __future__ import annotations

import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from agent_helpers import Release, node_settings, running_node
from security_helpers import TestCA as Authority  # an alias pytest does not collect
from security_helpers import find_secret, new_token, tokens_file
from server_helpers import free_port
from tierwise.agent import ControlPlane, ControlSettings, build_agent_app
from tierwise.agent.run import agent_guard, check_agent_exposure
from tierwise.agent.settings import load_agent_settings, with_access
from tierwise.errors import AgentError, ConfigError, ForbiddenError, UnauthenticatedError
from tierwise.security import server_context

ROW = np.random.default_rng(3).random((1, 8, 8), dtype=np.float32).ravel().tolist()
INFER = {
    "inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": ROW}],
    "outputs": [{"name": "probabilities"}],
}

#: the node's clients: one per scope
GRANTS = (("ops", "admin"), ("watcher", "telemetry"), ("app", "infer"))
#: for each scope, a client whose token lacks it
LACKS = {"admin": "watcher", "telemetry": "app", "infer": "watcher"}


@dataclass(frozen=True)
class Case:
    """One endpoint: the scope it needs (None: open) and what the right caller gets."""

    method: str
    path: str
    scope: str | None
    body: dict[str, object] | None = None
    allowed: int = 200


# in this order: desired runs version 2, rollback then takes the node back to 1
CASES = (
    Case("GET", "/v2/health/live", None),
    Case("GET", "/v2/health/ready", None),
    Case("GET", "/v2/agent/status", "telemetry"),
    Case("GET", "/metrics", "telemetry"),
    Case("POST", "/v2/models/small/infer", "infer", INFER),
    Case("GET", "/v2/models/small", "infer"),
    Case("GET", "/v2/models/small/ready", "infer"),
    Case("GET", "/v2", "infer"),
    Case("POST", "/v2/agent/sync", "admin", {}),
    Case("PUT", "/v2/agent/desired", "admin", {"ref": "2"}),
    Case("POST", "/v2/agent/rollback", "admin", {}),
    Case("POST", "/v2/repository/index", "admin", {}),
    Case("GET", "/v2/agent/nothing-here", "admin", allowed=404),
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ask(url: str, case: Case, headers: dict[str, str]) -> httpx.Response:
    response = httpx.request(
        case.method, url + case.path, json=case.body, headers=headers, timeout=60
    )
    # no answer, allowed or refused, ever holds a token
    assert find_secret(response.text) is None, (case, response.text)
    assert find_secret(str(response.headers)) is None, case
    return response


@pytest.fixture
def guarded(tmp_path: Path, release: Release) -> Iterator[tuple[str, dict[str, str]]]:
    """A node with one token per scope, running version 1; its URL and the tokens."""
    path, tokens = tokens_file(tmp_path / "tokens", *GRANTS)
    settings = node_settings(tmp_path, release, auth={"tokens_file": path})
    with running_node(settings, token=tokens["ops"]) as node:
        assert node.desired("1")["status"]["version"] == "1"
        yield node.url, tokens


def test_every_endpoint_needs_its_scope(guarded: tuple[str, dict[str, str]]) -> None:
    url, tokens = guarded
    stranger, _ = new_token("ops", "admin,telemetry,infer")  # well formed, not the node's
    for case in CASES:
        if case.scope is None:
            for headers in ({}, _bearer(stranger), _bearer(tokens["app"])):
                assert _ask(url, case, headers).status_code == 200, case
            continue
        missing = _ask(url, case, {})
        assert missing.status_code == 401, (case, missing.text)
        assert f'scope="{case.scope}"' in missing.headers["www-authenticate"]
        wrong = _ask(url, case, _bearer(stranger))
        assert wrong.status_code == 401, (case, wrong.text)
        assert "invalid_token" in wrong.headers["www-authenticate"]
        other = _ask(url, case, _bearer(tokens[LACKS[case.scope]]))
        assert other.status_code == 403, (case, other.text)
        assert f"needs scope {case.scope!r}" in other.json()["error"]
        client = {"admin": "ops", "telemetry": "watcher", "infer": "app"}[case.scope]
        right = _ask(url, case, _bearer(tokens[client]))
        assert right.status_code == case.allowed, (case, right.text)
    status = httpx.get(url + "/v2/agent/status", headers=_bearer(tokens["watcher"])).json()
    assert status["version"] == "1"  # desired ran 2, rollback took it back


def test_admin_actions_are_audited_without_tokens(
    guarded: tuple[str, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    url, tokens = guarded
    desired = url + "/v2/agent/desired"
    with caplog.at_level(logging.INFO, logger="tierwise.audit"):
        assert httpx.put(desired, json={"ref": "2"}).status_code == 401
        refused = httpx.put(desired, json={"ref": "2"}, headers=_bearer(tokens["watcher"]))
        assert refused.status_code == 403
        done = httpx.put(desired, json={"ref": "2"}, headers=_bearer(tokens["ops"]), timeout=60)
        assert done.status_code == 200
        bad = httpx.put(desired, json={"ref": 2}, headers=_bearer(tokens["ops"]))
        assert bad.status_code == 400
        back = httpx.post(
            url + "/v2/agent/rollback", json={}, headers=_bearer(tokens["ops"]), timeout=60
        )
        assert back.status_code == 200
        forged = httpx.put(
            desired, json={"ref": "3 client=root status=200\naudit action=x"},
            headers=_bearer(tokens["ops"]), timeout=60,
        )  # fmt: skip
        assert forged.status_code == 400
        reading = httpx.get(url + "/v2/agent/status", headers=_bearer(tokens["watcher"]))
        assert reading.status_code == 200
        # the tier server's admin routes on the node name the client the same way
        index = httpx.post(url + "/v2/repository/index", headers=_bearer(tokens["ops"]))
        assert index.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "tierwise.audit"]
    assert lines[:5] == [
        "audit action=desired client=- status=401",
        "audit action=desired client=watcher status=403",
        "audit action=desired bundle=digits ref=2 result=activated client=ops status=200",
        "audit action=desired client=ops status=400",
        "audit action=rollback bundle=digits version=1 client=ops status=200",
    ]
    # a value from the request is quoted: it cannot add a field or a line
    assert lines[5].startswith('audit action=desired bundle=digits ref="3 client=root')
    assert lines[5].endswith("client=ops status=400")
    assert "\n" not in lines[5]
    assert lines[6].startswith("audit action=index ")
    assert " client=ops status=200" in lines[6]
    assert len(lines) == 7  # reading the status is no admin action
    for line in lines:
        assert find_secret(line) is None


def test_the_control_token_shorthand(
    tmp_path: Path, release: Release, caplog: pytest.LogCaptureFixture
) -> None:
    settings = node_settings(tmp_path, release, control_token_env="TW_CONTROL")
    with pytest.raises(ConfigError, match=r"tokens_env\[TW_CONTROL\]: expected a tierwise token"):
        build_agent_app(settings, env={"TW_CONTROL": "plain-password-9"})
    token, _ = new_token("anyone", "admin")
    with running_node(settings, env={"TW_CONTROL": token}) as node:
        # alone, the shorthand guards what changes the node; the rest stays open
        assert httpx.get(node.url + "/v2/agent/status").status_code == 200
        assert httpx.get(node.url + "/metrics").status_code == 200
        refused = httpx.put(node.url + "/v2/agent/desired", json={"ref": "1"})
        assert refused.status_code == 401
        with caplog.at_level(logging.INFO, logger="tierwise.audit"):
            node.token = token
            assert node.desired("1")["status"]["version"] == "1"
        served = httpx.post(node.url + "/v2/models/small/infer", json=INFER, timeout=10)
        assert served.status_code == 200
    audit = [r.getMessage() for r in caplog.records if r.name == "tierwise.audit"]
    assert audit == ["audit action=desired bundle=digits ref=1 result=activated client=control "
                     "status=200"]  # fmt: skip

    # beside a tokens file, the file's rules hold and the shorthand adds an admin token
    path, tokens = tokens_file(tmp_path / "tokens", ("watcher", "telemetry"))
    both = node_settings(
        tmp_path, release, control_token_env="TW_CONTROL", auth={"tokens_file": path}
    )
    guard = agent_guard(both, {"TW_CONTROL": token})
    principal = guard.check("admin", f"Bearer {token}")
    assert principal is not None
    assert principal.client == "control"
    with pytest.raises(ForbiddenError):
        guard.check("telemetry", f"Bearer {token}")
    with pytest.raises(UnauthenticatedError):
        guard.check("telemetry", None)
    assert guard.check("telemetry", f"Bearer {tokens['watcher']}") is not None


def test_a_tls_node_is_reached_verifying_its_ca(tmp_path: Path, release: Release) -> None:
    ca = Authority(tmp_path / "ca")
    pem = ca.issue("node")
    client = ca.issue("ops-laptop", server=False)
    path, tokens = tokens_file(tmp_path / "tokens", ("watcher", "telemetry"))
    settings = node_settings(
        tmp_path, release, auth={"tokens_file": path},
        tls={"cert": pem.cert, "key": pem.key, "client_ca": ca.ca_file},
    )  # fmt: skip
    trusting = ssl.create_default_context(cafile=str(ca.ca_file))
    trusting.load_cert_chain(str(client.cert), str(client.key))
    with running_node(settings) as node:
        assert node.url.startswith("https://")
        with httpx.Client(verify=trusting, timeout=10) as session:
            assert session.get(node.url + "/v2/health/live").status_code == 200
            status = session.get(node.url + "/v2/agent/status", headers=_bearer(tokens["watcher"]))
            assert status.status_code == 200
            assert status.json()["node"] == "store-1"
            assert session.get(node.url + "/v2/agent/status").status_code == 401
        # the system's trust store does not know the test CA
        with pytest.raises(httpx.ConnectError), httpx.Client(timeout=10) as session:
            session.get(node.url + "/v2/health/live")
        # mutual TLS: without a client certificate the handshake is refused
        anonymous = ssl.create_default_context(cafile=str(ca.ca_file))
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=anonymous, timeout=10) as s:
            s.get(node.url + "/v2/health/live")


@pytest.fixture
def https_control(tmp_path: Path) -> Iterator[tuple[str, Authority, list[str | None]]]:
    """An https control plane answering ``{ref: "1"}``; its URL, CA and the tokens seen."""
    ca = Authority(tmp_path / "control-ca")
    pem = ca.issue("control")
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = b'{"ref": "1"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    from tierwise.security import TlsServerSettings

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = server_context(TlsServerSettings(cert=pem.cert, key=pem.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/fleet/{{node}}", ca, seen
    server.shutdown()
    server.server_close()


def test_an_https_control_plane_is_verified(
    https_control: tuple[str, Authority, list[str | None]],
) -> None:
    url, ca, seen = https_control
    token, _ = new_token("store-1", "telemetry")
    settings = ControlSettings(url=url, token_env="FLEET", tls={"ca": ca.ca_file})
    plane = ControlPlane(settings, "store-1", {"FLEET": token})
    try:
        desired = plane.fetch()
        assert desired is not None
        assert desired.ref == "1"
        assert seen == [f"Bearer {token}"]
    finally:
        plane.close()
    # the system's trust store does not know the control plane's CA: nothing is sent
    untrusting = ControlPlane(ControlSettings(url=url, token_env="FLEET"), "n", {"FLEET": token})
    try:
        with pytest.raises(AgentError, match="did not answer"):
            untrusting.fetch()
        assert len(seen) == 1
    finally:
        untrusting.close()
    plain = ControlSettings(url="http://127.0.0.1:9/desired", tls={"ca": ca.ca_file})
    with pytest.raises(ConfigError, match=r"an https URL when control\.tls is given"):
        ControlPlane(plain, "n", {})


def test_exposure_rules(tmp_path: Path, release: Release) -> None:
    open_node = node_settings(tmp_path, release, host="0.0.0.0")
    with pytest.raises(ConfigError, match="expected a loopback address, or protection"):
        check_agent_exposure(open_node, agent_guard(open_node, {}))
    insecure = open_node.model_copy(update={"insecure": True})
    warning = check_agent_exposure(insecure, agent_guard(insecure, {}))
    assert warning is not None
    assert warning.startswith("INSECURE: listening on 0.0.0.0")
    assert (
        check_agent_exposure(node_settings(tmp_path, release), agent_guard(open_node, {})) is None
    )
    path, _ = tokens_file(tmp_path / "tokens", ("ops", "admin"))
    guarded = with_access(open_node, tokens_file=path)
    assert check_agent_exposure(guarded, agent_guard(guarded, {})) is None
    ca = Authority(tmp_path / "ca")
    pem = ca.issue("node")
    tls_only = with_access(open_node, tls_cert=pem.cert, tls_key=pem.key)
    with pytest.raises(ConfigError, match="loopback"):  # TLS alone proves no caller
        check_agent_exposure(tls_only, agent_guard(tls_only, {}))
    mutual = with_access(tls_only, tls_client_ca=ca.ca_file)
    assert mutual.tls is not None
    assert mutual.tls.cert == pem.cert
    assert check_agent_exposure(mutual, agent_guard(mutual, {})) is None
    with pytest.raises(ConfigError, match="key"):
        with_access(open_node, tls_cert=pem.cert)


def test_settings_file_access_keys(tmp_path: Path, release: Release) -> None:
    config = tmp_path / "conf" / "agent.yaml"
    config.parent.mkdir()
    config.write_text(
        f"""
state_dir: node
bundle: digits
serve: [{{variant: small}}]
registry: {{store: {release.root}, trusted_keys: [{release.keys.public_path}]}}
desired_file: desired.yaml
auth: {{tokens_file: tokens, tokens_env: [{{env: TW_OPS, client: ops, scopes: [admin]}}],
        open_scopes: [infer]}}
tls: {{cert: certs/node.crt, key: certs/node.key}}
control: {{url: "https://control.example/{{node}}", tls: {{ca: certs/ca.crt}}}}
"""
    )
    settings = load_agent_settings(config)
    folder = config.parent
    assert settings.auth is not None
    assert settings.auth.tokens_file == folder / "tokens"
    assert settings.tls is not None
    assert settings.tls.key == folder / "certs" / "node.key"
    assert settings.control is not None
    assert settings.control.tls is not None
    assert settings.control.tls.ca == folder / "certs" / "ca.crt"
    elsewhere = with_access(settings, tokens_file=tmp_path / "other")
    assert elsewhere.auth is not None
    assert elsewhere.auth.tokens_file == tmp_path / "other"
    assert [e.env for e in elsewhere.auth.tokens_env] == ["TW_OPS"]  # the file's kept
    config.write_text(config.read_text().replace("open_scopes: [infer]", "open_scopes: [admin]"))
    with pytest.raises(ConfigError, match="admin always needs a token"):
        load_agent_settings(config)


def _agent_config(tmp_path: Path, release: Release, port: int) -> Path:
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"""
node: store-1
state_dir: node
host: 0.0.0.0
port: {port}
bundle: digits
serve: [{{variant: small}}]
registry: {{store: {release.root}, trusted_keys: [{release.keys.public_path}]}}
desired_file: desired.yaml
"""
    )
    return config


def test_an_unguarded_public_node_refuses_to_start_unless_insecure(
    tmp_path: Path, release: Release
) -> None:
    port = free_port()
    config = _agent_config(tmp_path, release, port)
    command = [sys.executable, "-m", "tierwise", "agent", "--config", str(config)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "expected a loopback address, or protection when bound elsewhere" in refused.stderr
    assert "--insecure" in refused.stderr
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--insecure"], stdout=out, stderr=subprocess.STDOUT
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        # open, as asked: the admin endpoint answers without a token, and /v2 says so
        assert httpx.get(f"http://127.0.0.1:{port}/v2/agent/status").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/v2").json()["insecure"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    first = log.read_text().splitlines()[0]
    assert "WARNING tierwise.agent: INSECURE: listening on 0.0.0.0 with no tokens" in first


def _edge_plan(path: Path) -> Path:
    path.write_text(
        """
version: 1
tiers:
  edge:
    kind: edge
    site: store-1
    region: us-east
    url: http://127.0.0.1:9
    model: small
    rtt_p50_ms: 0
    rtt_p99_ms: 1
    cost_usd_per_inference: 0.000001
    timeout_s: 5
workloads:
  digits:
    privacy: public
    cascade:
      - {tier: edge}
"""
    )
    return path


def test_the_gateway_port_checks_the_nodes_tokens(tmp_path: Path, release: Release) -> None:
    path, tokens = tokens_file(tmp_path / "tokens", *GRANTS)
    settings = node_settings(
        tmp_path, release, auth={"tokens_file": path},
        gateway={"plan": _edge_plan(tmp_path / "plan.yaml"), "local_tier": "edge"},
    )  # fmt: skip
    with running_node(settings, token=tokens["ops"]) as node:
        node.desired("1")
        gateway = node.app.gateway
        assert gateway is not None
        assert gateway.routes.guard is node.app.guard  # one set of tokens for both ports
        # each gateway route answers as the scope the gateway declares for it
        cases = [
            Case("GET", "/v2/health/live", None),
            Case("GET", "/metrics", None),
            Case("POST", "/v2/models/digits/infer", None, INFER),
        ]
        declared = {
            case.path: gateway.routes.match(case.method, case.path)[0].scope for case in cases
        }
        owner = {"admin": "ops", "telemetry": "watcher", "infer": "app"}
        for case in cases:
            scope = declared[case.path]
            bare = _ask(node.gateway_url, case, {})
            assert bare.status_code == (200 if scope is None else 401), (case, bare.text)
            if scope is not None:
                other = _ask(node.gateway_url, case, _bearer(tokens[LACKS[scope]]))
                assert other.status_code == 403, (case, other.text)
                right = _ask(node.gateway_url, case, _bearer(tokens[owner[scope]]))
                assert right.status_code == 200, (case, right.text)
        assert declared["/v2/health/live"] is None


def test_the_agent_verbs_send_a_token_over_tls(tmp_path: Path, release: Release) -> None:
    ca = Authority(tmp_path / "ca")
    pem = ca.issue("node")
    path, tokens = tokens_file(tmp_path / "tokens", *GRANTS)
    settings = node_settings(
        tmp_path, release, auth={"tokens_file": path}, tls={"cert": pem.cert, "key": pem.key}
    )
    with running_node(settings, token=tokens["ops"]) as node:
        config = _agent_config(tmp_path, release, node.port)
        text = config.read_text().replace("host: 0.0.0.0", "host: 127.0.0.1")
        config.write_text(
            text + f"auth: {{tokens_file: {path}}}\ntls: {{cert: x.crt, key: x.key}}\n"
        )
        verb = [sys.executable, "-m", "tierwise", "agent", "desired", "--config", str(config)]
        env = {**os.environ, "TW_OPS": tokens["ops"], "TW_WATCH": tokens["watcher"]}
        done = subprocess.run(
            [*verb, "1", "--json", "--token-env", "TW_OPS", "--ca", str(ca.ca_file)],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"]["version"] == "1"
        refused = subprocess.run(
            [*verb, "1", "--token-env", "TW_WATCH", "--ca", str(ca.ca_file)],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "client 'watcher' may not do this: it needs scope 'admin'" in refused.stderr
        assert find_secret(refused.stderr + refused.stdout + done.stderr) is None
