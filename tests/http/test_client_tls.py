"""HttpClient over TLS on loopback: a uvicorn server with certificates of a CA made in the
test, the client checking them (and showing its own for mutual TLS); every handshake
that fails says what failed and what to set, and never shows key material."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from security_helpers import TestCA as CA
from security_helpers import find_secret
from server_helpers import running_app
from tierwise.errors import TierUnavailableError
from tierwise.http.client import HttpClient
from tierwise.security.tls import TlsClientSettings, TlsServerSettings, client_context


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with its path and the client's port (one port per TCP
    connection, so two answers with one port came over one connection)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = orjson.dumps({"path": scope["path"], "port": scope["client"][1]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(**ssl_options: Any) -> Iterator[int]:
    """``echo`` on loopback (TLS when given uvicorn's ``ssl_*`` options); its port."""
    with running_app(echo, **ssl_options) as (_, port):
        yield port


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "ca")


def tls_server(ca: CA, name: str = "server", *, mutual: bool = False, **issue: Any) -> Any:
    pem = ca.issue(name, **issue)
    settings = TlsServerSettings(
        cert=pem.cert, key=pem.key, client_ca=ca.ca_file if mutual else None
    )
    return serving(**settings.uvicorn_options())


def client(port: int, settings: TlsClientSettings | None) -> HttpClient:
    server_name = settings.server_name if settings is not None else None
    return HttpClient(
        f"https://127.0.0.1:{port}",
        name="cloud",
        timeout_s=5,
        ssl_context=client_context(settings),
        server_name=server_name,
    )


async def failure(port: int, settings: TlsClientSettings | None) -> TierUnavailableError:
    async with client(port, settings) as http:
        with pytest.raises(TierUnavailableError) as info:
            await http.get("/v2")
    error = info.value
    assert error.tier == "cloud"
    assert find_secret(str(error)) is None
    return error


async def test_https_with_the_ca_answers_over_one_kept_alive_connection(ca: CA) -> None:
    with tls_server(ca) as port:
        async with client(port, TlsClientSettings(ca=ca.ca_file)) as http:
            first = await http.get("/v2/health/ready")
            second = await http.post("/v2/models/m/infer", json={"inputs": []})
    assert first.status_code == second.status_code == 200
    assert first.json()["path"] == "/v2/health/ready"
    assert second.json()["path"] == "/v2/models/m/infer"
    assert first.json()["port"] == second.json()["port"]  # the TLS connection was reused


async def test_mutual_tls_with_the_clients_certificate_answers(ca: CA) -> None:
    mine = ca.issue("router", server=False)
    settings = TlsClientSettings(ca=ca.ca_file, cert=mine.cert, key=mine.key)
    with tls_server(ca, mutual=True) as port:
        async with client(port, settings) as http:
            assert (await http.get("/v2")).json()["path"] == "/v2"


async def test_mutual_tls_without_a_client_certificate_is_refused(ca: CA) -> None:
    with tls_server(ca, mutual=True) as port:
        error = await failure(port, TlsClientSettings(ca=ca.ca_file))
    assert f"the server at https://127.0.0.1:{port} refused the TLS handshake" in error.reason
    assert "tls.cert and tls.key" in error.reason
    assert error.reason.startswith("the server")  # no exception class in front of it


async def test_a_tls12_client_without_a_certificate_is_refused_too(ca: CA) -> None:
    context = client_context(TlsClientSettings(ca=ca.ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # refused inside the handshake itself
    with tls_server(ca, mutual=True) as port:
        async with HttpClient(f"https://127.0.0.1:{port}", name="c", ssl_context=context) as http:
            with pytest.raises(TierUnavailableError) as info:
                await http.get("/v2")
    assert "refused the TLS handshake" in info.value.reason
    assert "tls.cert and tls.key" in info.value.reason


async def test_a_client_certificate_of_another_ca_is_refused(ca: CA, tmp_path: Path) -> None:
    stranger = CA(tmp_path / "other", name="other CA").issue("router", server=False)
    settings = TlsClientSettings(ca=ca.ca_file, cert=stranger.cert, key=stranger.key)
    with tls_server(ca, mutual=True) as port:
        error = await failure(port, settings)
    assert "refused the TLS handshake" in error.reason


async def test_a_server_certificate_of_an_unknown_ca_fails_verification(
    ca: CA, tmp_path: Path
) -> None:
    other = CA(tmp_path / "other", name="other CA")
    with tls_server(ca) as port:
        error = await failure(port, TlsClientSettings(ca=other.ca_file))
        system_only = await failure(port, None)  # the system's store does not know it either
    expected = "certificate verify failed: unable to get local issuer certificate"
    assert expected in error.reason
    assert f"TLS handshake with https://127.0.0.1:{port} failed" in error.reason
    assert "tls.ca" in error.reason
    assert expected in system_only.reason


async def test_an_expired_server_certificate_fails_verification(ca: CA) -> None:
    with tls_server(ca, "old", expired=True) as port:
        error = await failure(port, TlsClientSettings(ca=ca.ca_file))
    assert "certificate verify failed: certificate has expired" in error.reason


async def test_a_certificate_for_another_name_fails_unless_server_name_says_it(
    ca: CA,
) -> None:
    with tls_server(ca, "named", hosts=("tier.internal",)) as port:
        error = await failure(port, TlsClientSettings(ca=ca.ca_file))
        named = TlsClientSettings(ca=ca.ca_file, server_name="tier.internal")
        async with client(port, named) as http:
            answer = await http.get("/v2")
    assert "certificate verify failed" in error.reason
    assert "mismatch" in error.reason
    assert "not valid for '127.0.0.1'" in error.reason
    assert "set tls.server_name" in error.reason
    assert answer.status_code == 200


async def test_insecure_skip_verify_talks_to_an_untrusted_server_and_warns_once(
    ca: CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = CA(tmp_path / "other", name="other CA")
    with caplog.at_level(logging.WARNING, logger="tierwise.security"):
        context = client_context(TlsClientSettings(insecure_skip_verify=True), who="tier 'lab'")
        with tls_server(stranger, hosts=("elsewhere.example",)) as port:
            async with HttpClient(f"https://127.0.0.1:{port}", ssl_context=context) as http:
                for _ in range(3):
                    assert (await http.get("/v2")).status_code == 200
    warnings = [r for r in caplog.records if "insecure_skip_verify" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "verification is OFF for tier 'lab'" in warnings[0].getMessage()


async def test_https_to_a_plain_http_server_says_it_does_not_speak_tls() -> None:
    with serving() as port:
        error = await failure(port, None)
    assert "does not speak TLS" in error.reason


async def test_http_to_a_tls_server_is_a_clear_failure_not_a_hang(ca: CA) -> None:
    with tls_server(ca) as port:
        async with HttpClient(f"http://127.0.0.1:{port}", name="cloud", timeout_s=5) as http:
            with pytest.raises(TierUnavailableError, match="closed the connection"):
                await http.get("/v2")


def test_server_name_is_checked_where_the_transport_is_built() -> None:
    with pytest.raises(ValueError, match="server_name"):
        HttpClient("https://127.0.0.1:1", server_name="")


def test_a_context_that_does_not_verify_is_never_the_default() -> None:
    context = client_context(None)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
