"""HttpClient against real loopback servers: keep-alive, timeouts and failures as the
project's errors, the sync path, and swapping the transport."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tierwise.errors import (
    ConfigError,
    PayloadTooLargeError,
    TierTimeoutError,
    TierUnavailableError,
)
from tierwise.http.client import HttpClient
from tierwise.http.http11 import Http11Transport
from tierwise.http.transport import HttpRequest, HttpResponse, HttpxTransport, Origin

Answer = Callable[[str, str, dict[str, str], bytes], Awaitable[bytes]]

#: A reply starting with this is sent without it, then the server closes the connection
#: (an empty reply closes it without answering).
HANG_UP = b"<hang up>"


@dataclass
class Seen:
    """What a loopback server was asked: one entry per request, and its connections."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    connections: int = 0


def _response(status: int, body: bytes, *, close: bool = False) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


async def echo(method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
    doc = {"method": method, "target": target, "body": body.decode()}
    return _response(200, orjson.dumps(doc))


@dataclass
class Loopback:
    url: str
    seen: Seen


async def _serve(answer: Answer) -> tuple[asyncio.Server, Loopback]:
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (line.split(":", 1) for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen.requests.append((method, target, headers, body))
                reply = await answer(method, target, headers, body)
                hang_up = not reply or reply.startswith(HANG_UP)
                writer.write(reply.removeprefix(HANG_UP))
                await writer.drain()
                if hang_up:
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Loopback(f"http://127.0.0.1:{port}", seen)


@pytest.fixture
async def loopback() -> AsyncIterator[Loopback]:
    server, running = await _serve(echo)
    yield running
    server.close()
    await server.wait_closed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the default transport ----------------------------------------------------------------


async def test_requests_share_one_keep_alive_connection(loopback: Loopback) -> None:
    async with HttpClient(loopback.url + "/api/", headers={"Authorization": "Bearer t"}) as client:
        for i in range(3):
            response = await client.post("/items?x=1", content=f"body-{i}".encode())
            assert response.status_code == 200
            assert response.is_success
            assert response.json() == {"method": "POST", "target": "/api/items?x=1",
                                       "body": f"body-{i}"}  # fmt: skip
        assert response.headers["content-type"] == "application/json"
    assert loopback.seen.connections == 1
    _, _, headers, _ = loopback.seen.requests[-1]
    assert headers["host"] == loopback.url.removeprefix("http://")
    assert headers["authorization"] == "Bearer t"
    assert headers["content-length"] == "6"


async def test_absolute_urls_and_json_bodies(loopback: Loopback) -> None:
    async with HttpClient() as client:
        response = await client.request("PUT", loopback.url + "/a?b=c", json={"k": [1, 2]})
    assert response.json()["target"] == "/a?b=c"
    _, _, headers, body = loopback.seen.requests[0]
    assert (headers["content-type"], orjson.loads(body)) == ("application/json", {"k": [1, 2]})


async def test_a_connection_the_peer_dropped_while_idle_is_replaced() -> None:
    async def answer_then_drop(method: str, target: str, h: dict[str, str], body: bytes) -> bytes:
        return HANG_UP + _response(200, b"{}")  # no "connection: close": looks reusable

    server, running = await _serve(answer_then_drop)
    try:
        async with HttpClient(running.url) as client:
            for _ in range(3):
                assert (await client.get("/")).status_code == 200
                await asyncio.sleep(0.05)
        assert running.seen.connections == 3
    finally:
        server.close()
        await server.wait_closed()


async def test_peer_closing_after_each_answer_is_not_an_error() -> None:
    async def answer(method: str, target: str, h: dict[str, str], body: bytes) -> bytes:
        return _response(200, b"{}", close=True)

    server, running = await _serve(answer)
    try:
        async with HttpClient(running.url) as client:
            for _ in range(3):
                assert (await client.get("/")).status_code == 200
        assert running.seen.connections == 3
    finally:
        server.close()
        await server.wait_closed()


async def test_timeout_raises_tier_timeout_naming_the_peer() -> None:
    async def never(method: str, target: str, h: dict[str, str], body: bytes) -> bytes:
        await asyncio.sleep(30)
        return b""

    server, running = await _serve(never)
    try:
        async with HttpClient(running.url, name="cloud") as client:
            with pytest.raises(TierTimeoutError) as info:
                await client.get("/slow", timeout_s=0.1)
        assert (info.value.tier, info.value.timeout_s) == ("cloud", 0.1)
        assert isinstance(info.value.__cause__, TimeoutError)
    finally:
        server.close()


async def test_unreachable_and_broken_peers_are_unavailable() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    async with HttpClient() as client:
        with pytest.raises(TierUnavailableError, match="ConnectionRefusedError") as info:
            await client.get(url + "/x", timeout_s=2)
    assert info.value.tier == url  # the origin when the client has no name

    async def garbage(method: str, target: str, h: dict[str, str], body: bytes) -> bytes:
        return b"NOT HTTP AT ALL\r\n\r\n"

    async def cut_short(method: str, target: str, h: dict[str, str], body: bytes) -> bytes:
        return HANG_UP + b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort"

    for answer, message in ((garbage, "malformed HTTP response"), (cut_short, "mid-response")):
        server, running = await _serve(answer)
        try:
            async with HttpClient(running.url, name="peer") as client:
                with pytest.raises(TierUnavailableError, match=message) as broken:
                    await client.get("/", timeout_s=5)
            assert broken.value.tier == "peer"
            assert isinstance(broken.value.__cause__, ConnectionError)
        finally:
            server.close()
            await server.wait_closed()


async def test_statuses_are_answers_not_errors() -> None:
    async def teapot(method: str, target: str, h: dict[str, str], body: bytes) -> bytes:
        return _response(418, b'{"error": "short and stout"}')

    server, running = await _serve(teapot)
    try:
        async with HttpClient(running.url) as client:
            response = await client.get("/")
        assert (response.status_code, response.is_success) == (418, False)
        assert response.json()["error"] == "short and stout"
    finally:
        server.close()


async def test_a_response_over_the_limit_is_refused() -> None:
    async def big(method: str, target: str, h: dict[str, str], body: bytes) -> bytes:
        return _response(200, b"x" * 5000)

    server, running = await _serve(big)
    try:
        async with HttpClient(running.url, max_response_bytes=1000) as client:
            with pytest.raises(PayloadTooLargeError) as info:
                await client.get("/")
        assert info.value.limit_bytes == 1000
    finally:
        server.close()


def test_bad_urls_and_settings_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        HttpClient("ftp://host/x")
    with pytest.raises(ConfigError, match="timeout_s"):
        HttpClient(timeout_s=0)
    with pytest.raises(ConfigError, match="max_connections"):
        HttpClient(max_connections=0)
    with pytest.raises(ConfigError, match="max_response_bytes"):
        Http11Transport(max_response_bytes=0)
    assert str(Origin.split("https://[::1]:8443/p?q=1")[0]) == "https://[::1]:8443"
    assert Origin.split("http://h/p?q=1")[1] == "/p?q=1"


async def test_a_relative_url_needs_a_base_url() -> None:
    async with HttpClient() as client:
        with pytest.raises(ConfigError, match="url"):
            await client.get("/no-base")
    async with HttpClient("http://127.0.0.1:1") as client:
        with pytest.raises(ConfigError, match="url"):
            await client.get("relative")


# -- swapping the transport ---------------------------------------------------------------


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering like :func:`echo`."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    target = scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
    doc = {"method": scope["method"], "target": target, "body": body.decode()}
    headers = [(b"content-type", b"application/json"), (b"x-app", b"asgi")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(doc)})


async def test_the_same_calls_run_in_process_over_an_asgi_transport(loopback: Loopback) -> None:
    over_tcp = HttpClient(loopback.url + "/api")
    in_process = HttpClient("http://app.test/api", transport=HttpxTransport(app=asgi_echo))
    try:
        answers = [
            await client.post("/items?x=1", json={"a": 1}) for client in (over_tcp, in_process)
        ]
    finally:
        await over_tcp.aclose()
        await in_process.aclose()
    assert answers[0].json() == answers[1].json()
    assert answers[1].headers["x-app"] == "asgi"  # lower-cased, as from the default transport


async def test_httpx_transport_failures_are_the_projects_errors() -> None:
    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(30)

    async with HttpClient("http://app.test", transport=HttpxTransport(app=slow_app)) as client:
        with pytest.raises(TierTimeoutError):
            await client.get("/", timeout_s=0.1)
    async with HttpClient(transport=HttpxTransport()) as client:
        with pytest.raises(TierUnavailableError, match="ConnectError"):
            await client.get(f"http://127.0.0.1:{_free_port()}/", timeout_s=2)
    async with HttpClient(
        "http://app.test", transport=HttpxTransport(app=asgi_echo, max_response_bytes=10)
    ) as client:
        with pytest.raises(PayloadTooLargeError):
            await client.get("/")


async def test_any_object_with_handle_is_a_transport() -> None:
    sent: list[HttpRequest] = []

    class Canned:
        async def handle(self, request: HttpRequest) -> HttpResponse:
            sent.append(request)
            return HttpResponse(201, {"location": "/x/1"}, b"{}")

        async def aclose(self) -> None:
            sent.clear()

    client = HttpClient("https://api.example:8443/v1", transport=Canned(), timeout_s=3)
    response = await client.post("/x", json=[1])
    assert (response.status_code, response.headers["location"]) == (201, "/x/1")
    [request] = sent
    assert (request.method, request.url, request.content) == (
        "POST", "https://api.example:8443/v1/x", b"[1]",
    )  # fmt: skip
    assert request.timeout_s == 3
    await client.aclose()
    assert sent == []


# -- callers without an event loop --------------------------------------------------------


@pytest.fixture
def threaded_server() -> Iterator[tuple[str, list[int]]]:
    """A keep-alive stdlib server on a thread; yields its URL and the ports of the
    connections it saw, one entry per request."""
    peers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            peers.append(self.client_address[1])
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.send_header("ETag", '"v1"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", peers
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_request_sync_reuses_its_connection(threaded_server: tuple[str, list[int]]) -> None:
    url, peers = threaded_server
    with HttpClient(url) as client:
        answers = [client.request_sync("GET", "/doc") for _ in range(3)]
    assert [a.json() for a in answers] == [{"ok": True}] * 3
    assert answers[0].headers["etag"] == '"v1"'
    assert len(peers) == 3
    assert len(set(peers)) == 1


def test_request_sync_maps_errors_too() -> None:
    with (
        HttpClient(name="control plane") as client,
        pytest.raises(TierUnavailableError, match="control plane"),
    ):
        client.request_sync("GET", f"http://127.0.0.1:{_free_port()}/", timeout_s=2)


async def test_sync_calls_are_refused_inside_a_running_loop_but_close_works() -> None:
    client = HttpClient("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="request_sync"):
        client.request_sync("GET", "/")
    client.close()  # from a coroutine: runs on a thread of its own
