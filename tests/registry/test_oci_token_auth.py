"""Bearer-token authentication against a real registry: Debian's docker-registry with
``auth.token`` set, trusting a token server run by the test on loopback (the flow Docker
Hub, GHCR, Harbor and Quay use)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from registry_helpers import OciRegistry, make_keys, oci_registry, publish
from tierwise.errors import RegistryError
from tierwise.registry import LocalStore, OciStore, TrustStore, pull
from tierwise.registry.oci_auth import RegistryAuth, parse_challenges
from tierwise.registry.oci_http import OciClient
from token_server import TokenServer, start_token_server


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[TokenServer]:
    server = TokenServer(
        users={"fleet": "s3cret", "viewer": "look"}, public={"tw/open"}, read_only={"viewer"}
    )
    httpd = start_token_server(tmp_path, server)
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def registry(tmp_path: Path, tokens: TokenServer) -> Iterator[OciRegistry]:
    with oci_registry(tmp_path, auth_config=tokens.registry_config()) as running:
        yield running


def _sorted_actions(scope: str) -> str:
    head, _, actions = scope.rpartition(":")
    return f"{head}:{','.join(sorted(actions.split(',')))}"


def _trust(tmp_path: Path) -> TrustStore:
    return TrustStore.from_paths([tmp_path / "keys" / "release.pub"])


def test_the_registry_refuses_requests_without_a_token(registry: OciRegistry) -> None:
    answer = requests.get(f"http://{registry.host}/v2/tw/demo/tags/list", timeout=10)
    assert answer.status_code == 401
    [(scheme, params)] = parse_challenges(answer.headers["WWW-Authenticate"])
    assert scheme == "bearer"
    assert params["scope"] == "repository:tw/demo:pull"


def test_push_and_pull_through_the_token_flow(
    tmp_path: Path, registry: OciRegistry, tokens: TokenServer
) -> None:
    keys = make_keys(tmp_path)
    store = OciStore(registry.url(), plain_http=True, username="fleet", password="s3cret")
    manifest = publish(store, tmp_path, keys, "1", {"edge": 3, "cloud": 4}, tags=["stable"])
    node = LocalStore(tmp_path / "node")
    assert pull(store, "demo", "stable", node, _trust(tmp_path)).digest == manifest.digest
    # tokens for the scopes the registry asked for, each fetched as the user
    users = {user for user, _ in tokens.requests}
    scopes = {_sorted_actions(scope) for _, asked in tokens.requests for scope in asked}
    assert users == {"fleet"}
    assert scopes == {"repository:tw/demo:pull", "repository:tw/demo:pull,push"}
    # a read-only user fetches its own token and reads
    reader = OciStore(registry.url(), plain_http=True, username="viewer", password="look")
    assert reader.resolve("demo", "stable") == store.resolve("demo", "stable")


def test_anonymous_pull_of_a_public_repository(
    tmp_path: Path, registry: OciRegistry, tokens: TokenServer
) -> None:
    keys = make_keys(tmp_path)
    writer = OciStore(registry.url("tw"), plain_http=True, username="fleet", password="s3cret")
    manifest = publish(writer, tmp_path, keys, "1", {"edge": 5}, name="open")
    anonymous = OciStore(registry.url("tw"), plain_http=True)
    node = LocalStore(tmp_path / "node")
    assert pull(anonymous, "open", "1", node, _trust(tmp_path)).digest == manifest.digest
    assert (None, ["repository:tw/open:pull"]) in tokens.requests
    with pytest.raises(RegistryError, match="it needs credentials"):
        anonymous.resolve("demo", "1")  # a private repository: the token grants nothing


def test_wrong_password_is_refused_at_the_token_realm(registry: OciRegistry) -> None:
    wrong = OciStore(registry.url(), plain_http=True, username="fleet", password="guess")
    with pytest.raises(RegistryError, match=r"token realm .*401: the credentials given were"):
        wrong.resolve("demo", "1")


def test_a_token_without_push_rights_is_refused_and_never_shown(
    tmp_path: Path, registry: OciRegistry, tokens: TokenServer
) -> None:
    reader = OciStore(registry.url(), plain_http=True, username="viewer", password="look")
    with pytest.raises(RegistryError, match="credentials given were refused") as caught:
        publish(reader, tmp_path, make_keys(tmp_path), "1", {"edge": 6})
    assert tokens.issued
    assert not any(token in str(caught.value) for token in tokens.issued)


def test_a_token_realm_over_plain_http_gets_no_credentials_unless_allowed() -> None:
    auth = RegistryAuth("registry.example:443", username="u", password="p", plain_http=False)
    with pytest.raises(RegistryError, match="plain HTTP; refusing to send credentials"):
        auth._fetch_token({"realm": "http://auth.example/token", "service": "s"})
    with pytest.raises(RegistryError, match="not an http"):
        auth._fetch_token({"realm": "file:///etc/passwd"})


def test_challenges_are_parsed_with_quotes_and_commas() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert parse_challenges(header) == [(
        "bearer",
        {"realm": "https://auth.example/token", "service": "registry.example",
         "scope": "repository:a/b:pull,push"},
    )]  # fmt: skip
    assert parse_challenges('Basic realm="tierwise"') == [("basic", {"realm": "tierwise"})]
    several = 'Basic realm="r1", Bearer realm="https://a.example/t", service=reg'
    assert parse_challenges(several) == [
        ("basic", {"realm": "r1"}),
        ("bearer", {"realm": "https://a.example/t", "service": "reg"}),
    ]
    assert parse_challenges("") == []


def test_a_challenge_from_a_host_a_redirect_led_to_gets_no_credentials() -> None:
    """A registry may redirect blob reads to storage elsewhere; if that host answered with
    its own token challenge, the registry's credentials must not go to its realm."""
    seen: list[str | None] = []

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            if self.path.startswith("/token"):
                body = json.dumps({"token": "harvested"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="s"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)
    storage_port = storage.server_address[1]

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{storage_port}/blob")
            self.send_header("Content-Length", "0")
            self.end_headers()

    registry = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    for server in (storage, registry):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = OciClient(
            f"oci://127.0.0.1:{registry.server_address[1]}", plain_http=True,
            username="fleet", password="s3cret",
        )  # fmt: skip
        answer = client._request("GET", f"{client.host}/v2/tw/demo/blobs/sha256:00")
        assert answer.status_code == 401
        assert seen == [None]  # the storage host got no credentials, and no realm was asked
    finally:
        for server in (storage, registry):
            server.shutdown()
            server.server_close()


def test_credentials_follow_the_registry_origin_not_the_spelling_of_its_host() -> None:
    auth = RegistryAuth("Registry.Example", username="u", password="p")
    session = requests.Session()
    session.auth = auth

    def sent(url: str) -> str | None:
        return session.prepare_request(requests.Request("GET", url)).headers.get("Authorization")

    assert sent("https://registry.example/v2/") is not None
    assert sent("https://REGISTRY.example:443/v2/x") is not None
    assert sent("http://registry.example/upload/1") is None  # plain HTTP on its own host
    assert sent("https://registry.example:8443/v2/") is None  # another port
    assert sent("https://storage.example/blob") is None


def test_an_upper_case_host_gets_its_token(
    tmp_path: Path, registry: OciRegistry, tokens: TokenServer
) -> None:
    store = OciStore(
        f"oci://LOCALHOST:{registry.port}/tw", plain_http=True, username="fleet", password="s3cret"
    )
    publish(store, tmp_path, make_keys(tmp_path), "1", {"edge": 8})
    assert store.resolve("demo", "1").startswith("sha256:")


def test_a_redirect_after_the_token_retry_carries_the_token() -> None:
    seen: list[tuple[str, str | None]] = []

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            given = self.headers.get("Authorization")
            seen.append((self.path.split("?")[0], given))
            port = self.server.server_address[1]
            if self.path.startswith("/token"):
                self._answer(200, {}, json.dumps({"token": "T"}).encode())
            elif given != "Bearer T":
                realm = f"http://127.0.0.1:{port}/token"
                self._answer(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
            elif self.path == "/v2/a":
                self._answer(307, {"Location": f"http://127.0.0.1:{port}/v2/b"})
            else:
                self._answer(200, {}, b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = OciClient(
            f"oci://127.0.0.1:{server.server_address[1]}", plain_http=True,
            username="fleet", password="s3cret",
        )  # fmt: skip
        assert client._request("GET", f"{client.host}/v2/a").status_code == 200
        assert [path for path, _ in seen].count("/token") == 1
        assert ("/v2/b", "Bearer T") in seen
        assert not any(given and given.startswith("Basic") for path, given in seen[1:]
                       if path != "/token")  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
