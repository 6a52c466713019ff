"""The demo's network: each remote tier is reached through a link with the plan's round
trips, local tiers are left alone, and the links stop with the context."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import httpx
import pytest

from tierwise.demo.links import linked_tiers


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def live_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _median_ms(client: httpx.Client, url: str, n: int = 15) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        assert client.get(url).text == "ok"
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[n // 2]


def test_remote_tiers_get_their_round_trips(live_url: str) -> None:
    tiers = {
        "device": {"kind": "device", "local": {"model": "tiny.onnx"}},
        "edge": {"kind": "edge", "url": "http://edge.planned:9001", "rtt_p50_ms": 5,
                 "rtt_p99_ms": 5},
        "cloud": {"kind": "cloud", "url": "http://cloud.planned:9002", "rtt_p50_ms": 40,
                  "rtt_p99_ms": 40},
    }  # fmt: skip
    live = {"http://edge.planned:9001": live_url, "http://cloud.planned:9002": live_url}
    with linked_tiers(tiers, live, seed=0) as links, httpx.Client(timeout=10) as client:
        urls = links.urls
        assert set(urls) == {"edge", "cloud"}  # the device tier runs in process
        assert urls["edge"] != urls["cloud"] != live_url  # one link per tier
        direct = _median_ms(client, live_url)
        edge = _median_ms(client, urls["edge"])
        cloud = _median_ms(client, urls["cloud"])
        links.partition("cloud", "reset")  # the switch works from this thread
        time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            client.get(urls["cloud"] + "/v2/health/ready")
        links.heal("cloud")
        time.sleep(0.2)
        assert client.get(urls["cloud"] + "/v2/health/ready").status_code == 200
    assert 5 <= edge - direct < 20
    assert 40 <= cloud - direct < 60
    with pytest.raises(httpx.ConnectError):  # the links are gone
        httpx.get(urls["cloud"], timeout=2)
