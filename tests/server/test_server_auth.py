"""Scoped tokens on the tier server: every endpoint asked with no token, an unknown
token, a token without the scope and the right one; errors that name what is missing
and never echo a token; ``open_scopes``; the audit line of every admin request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from onnx_models import scale_model
from security_helpers import find_secret, new_token, tokens_file
from server_helpers import RunningServer, captured_logs, running_server
from tierwise.security import AuthSettings
from tierwise.server import ServerSettings

INFER_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: str | None  # None: open to anyone
    ok: int = 200  # the answer to a caller allowed in

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("GET", "/v2", "infer"),
    Endpoint("GET", "/v2/models/scale", "infer"),
    Endpoint("GET", "/v2/models/scale/versions/1", "infer"),
    Endpoint("GET", "/v2/models/scale/ready", "infer"),
    Endpoint("GET", "/v2/models/scale/versions/1/ready", "infer"),
    Endpoint("POST", "/v2/models/scale/infer", "infer"),
    Endpoint("POST", "/v2/models/scale/versions/1/infer", "infer"),
    Endpoint("POST", "/v2/repository/index", "admin"),
    Endpoint("POST", "/v2/repository/models/spare/unload", "admin"),
    Endpoint("POST", "/v2/repository/models/spare/load", "admin"),
    Endpoint("POST", "/v2/repository/models/spare/frobnicate", "admin", ok=404),
    Endpoint("GET", "/metrics", "telemetry"),
    Endpoint("GET", "/v2/health/live", None),
    Endpoint("GET", "/v2/health/ready", None),
]
#: A token that holds every scope but the one named.
WRONG_SCOPE = {"infer": "prom", "admin": "app", "telemetry": "app"}
RIGHT = {"infer": "app", "admin": "ops", "telemetry": "prom"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    scale_model(root / "scale" / "1" / "model.onnx", 2.0)
    scale_model(root / "spare" / "1" / "model.onnx", 5.0)
    return root


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("tokens")
    path, by_client = tokens_file(
        folder / "tokens.txt",
        ("app", "infer"),
        ("ops", "admin"),
        ("prom", "telemetry"),
    )
    by_client["stranger"], _ = new_token("stranger", "infer,admin,telemetry")  # not in the file
    return path, by_client


@pytest.fixture(scope="module")
def server(repo: Path, tokens: tuple[Path, dict[str, str]]) -> Iterator[RunningServer]:
    settings = ServerSettings(model_repo=repo, auth=AuthSettings(tokens_file=tokens[0]))
    with running_server(settings) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _ask(client: httpx.Client, endpoint: Endpoint, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if endpoint.method == "POST":
        body = INFER_BODY if endpoint.path.endswith("/infer") else {}
        return client.post(endpoint.path, json=body, headers=headers)
    return client.get(endpoint.path, headers=headers)


def _error(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert isinstance(message, str)
    assert find_secret(response.text) is None, "an error body echoed a token"
    return message


CASES = [
    (endpoint, caller)
    for endpoint in ENDPOINTS
    for caller in ("none", "unknown", "wrong-scope", "right")
]


@pytest.mark.parametrize(("endpoint", "caller"), CASES, ids=[f"{e}-{c}" for e, c in CASES])
def test_every_endpoint_by_caller(
    client: httpx.Client,
    tokens: tuple[Path, dict[str, str]],
    endpoint: Endpoint,
    caller: str,
) -> None:
    by_client = tokens[1]
    scope = endpoint.scope
    token = {
        "none": None,
        "unknown": by_client["stranger"],
        "wrong-scope": by_client[WRONG_SCOPE[scope or "infer"]],
        "right": by_client[RIGHT[scope or "infer"]],
    }[caller]
    response = _ask(client, endpoint, token)
    if scope is None:  # health probes answer anyone, whatever they send
        assert response.status_code == 200, response.text
        return
    if caller == "none":
        assert response.status_code == 401
        message = _error(response)
        assert "needs a bearer token" in message
        assert f"scope {scope!r}" in message
        assert response.headers["www-authenticate"] == (f'Bearer realm="tierwise", scope="{scope}"')
    elif caller == "unknown":
        assert response.status_code == 401
        message = _error(response)
        assert "not one this server knows" in message
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    elif caller == "wrong-scope":
        assert response.status_code == 403
        message = _error(response)
        holder = WRONG_SCOPE[scope]
        assert f"client {holder!r}" in message
        assert f"needs scope {scope!r}" in message
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    else:
        assert response.status_code == endpoint.ok, response.text
        if endpoint.ok != 200:
            _error(response)
        if endpoint.path.endswith("/unload"):  # put it back for the cases that follow
            restore = {"Authorization": f"Bearer {by_client['ops']}"}
            loaded = client.post("/v2/repository/models/spare/load", json={}, headers=restore)
            assert loaded.status_code == 200


def test_right_answers_are_the_real_ones(
    client: httpx.Client, tokens: tuple[Path, dict[str, str]]
) -> None:
    app = {"Authorization": f"Bearer {tokens[1]['app']}"}
    answer = client.post("/v2/models/scale/infer", json=INFER_BODY, headers=app).json()
    assert answer["outputs"][0]["data"] == [2, 4, 6, 8]
    meta = client.get("/v2", headers=app).json()
    assert meta["name"] == "tierwise"
    assert "insecure" not in meta
    ops = {"Authorization": f"Bearer {tokens[1]['ops']}"}
    rows = client.post("/v2/repository/index", json={}, headers=ops).json()
    assert {r["name"] for r in rows} == {"scale", "spare"}


def test_metrics_hold_no_token(client: httpx.Client, tokens: tuple[Path, dict[str, str]]) -> None:
    by_client = tokens[1]
    for token in by_client.values():  # every token has been sent to every kind of route
        for endpoint in ENDPOINTS[:8]:
            _ask(client, endpoint, token)
    text = client.get("/metrics", headers={"Authorization": f"Bearer {by_client['prom']}"}).text
    assert "tierwise_" in text
    assert find_secret(text) is None


def test_scheme_and_token_shape_are_checked(
    client: httpx.Client, tokens: tuple[Path, dict[str, str]]
) -> None:
    token = tokens[1]["app"]
    for value in (f"Basic {token}", token, f"Bearer {token}x", f"Bearer  {token[:-1]}"):
        response = client.get("/v2/models/scale", headers={"Authorization": value})
        assert response.status_code == 401
        assert find_secret(response.text) is None


def test_open_infer_scope(repo: Path, tokens: tuple[Path, dict[str, str]]) -> None:
    settings = ServerSettings(
        model_repo=repo, auth=AuthSettings(tokens_file=tokens[0], open_scopes=["infer"])
    )
    by_client = tokens[1]
    with running_server(settings) as running, httpx.Client(base_url=running.url) as c:
        assert c.post("/v2/models/scale/infer", json=INFER_BODY).status_code == 200
        assert c.get("/v2/models/scale").status_code == 200
        assert c.get("/v2").status_code == 200
        # a token sent to an open scope must still be a valid one
        bad = {"Authorization": f"Bearer {by_client['stranger']}"}
        assert c.get("/v2/models/scale", headers=bad).status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.post("/v2/repository/index", json={}).status_code == 401
        app = {"Authorization": f"Bearer {by_client['app']}"}
        assert c.post("/v2/repository/index", json={}, headers=app).status_code == 403


def test_audit_lines_of_admin_requests(
    client: httpx.Client, server: RunningServer, tokens: tuple[Path, dict[str, str]]
) -> None:
    by_client = tokens[1]
    ops = {"Authorization": f"Bearer {by_client['ops']}"}
    with captured_logs("tierwise.audit") as lines:
        assert client.post("/v2/repository/models/spare/unload", headers=ops).status_code == 200
        assert client.post("/v2/repository/models/spare/load", headers=ops).status_code == 200
        assert client.post("/v2/repository/index", json={}, headers=ops).status_code == 200
        app = {"Authorization": f"Bearer {by_client['app']}"}
        assert client.post("/v2/repository/models/spare/unload", headers=app).status_code == 403
        assert client.post("/v2/repository/models/spare/unload").status_code == 401
        assert client.post("/v2/repository/models/no%0Ape/load", headers=ops).status_code == 404
        client.post("/v2/models/scale/infer", json=INFER_BODY, headers=app)  # not audited
    peer = "peer=127.0.0.1"
    assert lines == [
        f"audit action=unload model=spare {peer} client=ops status=200",
        f"audit action=load model=spare {peer} client=ops status=200",
        f"audit action=index model=- {peer} client=ops status=200",
        f"audit action=unload model=spare {peer} client=app status=403",
        f"audit action=unload model=spare {peer} client=- status=401",
        f'audit action=load model="no\\npe" {peer} client=ops status=404',
    ]
    for line in lines:
        assert find_secret(line) is None


def test_audit_on_an_open_server_names_no_client(repo: Path) -> None:
    with (
        running_server(ServerSettings(model_repo=repo)) as running,
        httpx.Client(base_url=running.url) as c,
        captured_logs("tierwise.audit") as lines,
    ):
        assert c.post("/v2/repository/models/spare/load").status_code == 200
    assert lines == ["audit action=load model=spare peer=127.0.0.1 client=- status=200"]


def test_a_bad_tokens_file_stops_the_app_with_its_line(repo: Path, tmp_path: Path) -> None:
    from tierwise.errors import ConfigError
    from tierwise.server import create_app

    token, _ = new_token("a", "infer")
    path = tmp_path / "tokens.txt"
    path.write_text(f"{token}\n")
    with pytest.raises(ConfigError) as caught:
        create_app(ServerSettings(model_repo=repo, auth=AuthSettings(tokens_file=path)))
    assert f"{path}:1" in str(caught.value)
    assert find_secret(str(caught.value)) is None


def test_settings_file_auth_and_tls_merge_with_flags(tmp_path: Path) -> None:
    from tierwise.server import load_yaml_settings

    config = tmp_path / "server.yaml"
    config.write_text(
        "auth:\n"
        "  open_scopes: [infer]\n"
        "  tokens_env: [{env: TW_GATEWAY, client: gateway, scopes: [infer]}]\n"
        "tls: {cert: s.crt, key: s.key}\n"
        "insecure: false\n"
    )
    settings = load_yaml_settings(
        config,
        model_repo=tmp_path,
        auth={"tokens_file": tmp_path / "t.txt"},
        tls={"client_ca": tmp_path / "ca.crt"},
    )
    assert settings.auth is not None
    assert settings.auth.tokens_file == tmp_path / "t.txt"
    assert settings.auth.open_scopes == ["infer"]  # the file's keys stay
    assert [e.client for e in settings.auth.tokens_env] == ["gateway"]
    assert settings.tls is not None
    assert settings.tls.mutual
    assert settings.tls.cert == Path("s.crt")
    assert not settings.insecure


def test_settings_file_refuses_open_admin(tmp_path: Path) -> None:
    from tierwise.errors import ConfigError
    from tierwise.server import load_yaml_settings

    config = tmp_path / "server.yaml"
    config.write_text("auth: {open_scopes: [admin]}\n")
    with pytest.raises(ConfigError, match="admin always needs a token"):
        load_yaml_settings(config, model_repo=tmp_path)
