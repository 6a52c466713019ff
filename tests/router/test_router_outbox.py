"""Outbox store, drainer and callbacks."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from outbox_helpers import FakeClock, request_body, wait_for
from tierwise.errors import ConfigError, TierwiseError
from tierwise.http.client import HttpClient
from tierwise.http.transport import HttpRequest, HttpResponse
from tierwise.outbox import (
    Drainer,
    DrainerSettings,
    Outbox,
    OutboxFullError,
    OutboxItem,
    OutboxItemNotFoundError,
)
from tierwise.protocol import (
    InferResponse,
    decode_request,
    decode_response,
    encode_response,
)

WORKER = Path(__file__).with_name("outbox_worker.py")


# -- store ------------------------------------------------------------------------------


def test_put_get_claim_complete(outbox: Outbox) -> None:
    item_id = outbox.put("cloud", request_body(7), meta={"workload": "w"})
    item = outbox.get(item_id)
    assert (item.status, item.attempts, item.meta) == ("pending", 0, {"workload": "w"})
    assert decode_request(item.payload).inputs["x"].tolist() == [7.0]

    [claimed] = outbox.claim("cloud", limit=10, lease_s=30)
    assert (claimed.id, claimed.status, claimed.attempts) == (item_id, "leased", 1)
    assert outbox.claim("cloud", limit=10, lease_s=30) == []  # leased: not due
    assert outbox.complete(item_id, b"answer") is True
    assert outbox.complete(item_id, b"second") is False  # done once, first result kept
    done = outbox.get(item_id)
    assert (done.status, done.result) == ("done", b"answer")
    assert outbox.pending_count() == 0


def test_claim_is_fifo_per_tier_and_limited(outbox: Outbox) -> None:
    ids = [outbox.put("cloud", request_body(i)) for i in range(5)]
    edge_id = outbox.put("edge", b"e")
    assert outbox.pending_count() == 6
    assert outbox.pending_count("cloud") == 5
    assert [i.id for i in outbox.claim("cloud", limit=3, lease_s=5)] == ids[:3]
    assert [i.id for i in outbox.claim("cloud", limit=3, lease_s=5)] == ids[3:]
    assert [i.id for i in outbox.claim("edge", limit=3, lease_s=5)] == [edge_id]


def test_lease_expiry_returns_item(outbox: Outbox, clock: FakeClock) -> None:
    item_id = outbox.put("cloud", b"p")
    [first] = outbox.claim("cloud", limit=1, lease_s=10)
    clock.now_s += 9.9
    assert outbox.claim("cloud", limit=1, lease_s=10) == []
    assert outbox.get(item_id).status == "leased"
    clock.now_s += 0.2
    assert outbox.get(item_id).status == "pending"  # lease ran out
    [second] = outbox.claim("cloud", limit=1, lease_s=10)
    assert (second.id, second.attempts) == (item_id, 2)
    assert second.lease_token != first.lease_token
    # the crashed first deliverer's late failure does not disturb the live lease
    assert outbox.fail(item_id, "late", lease_token=first.lease_token) == "leased"
    assert outbox.complete(item_id, b"ok") is True


def test_fail_backs_off_then_gives_up(tmp_path: Path, clock: FakeClock) -> None:
    box = Outbox(tmp_path / "o.db", max_items=10, clock=clock, max_attempts=3, backoff_base_s=2.0)
    item_id = box.put("cloud", b"p")
    box.claim("cloud", limit=1, lease_s=5)
    assert box.fail(item_id, "boom 1") == "pending"
    item = box.get(item_id)
    assert (item.not_before_s, item.last_error) == (clock.now_s + 2.0, "boom 1")
    clock.now_s += 1.9
    assert box.claim("cloud", limit=1, lease_s=5) == []  # still backing off
    clock.now_s += 0.1
    box.claim("cloud", limit=1, lease_s=5)
    assert box.fail(item_id, "boom 2") == "pending"
    assert box.get(item_id).not_before_s == clock.now_s + 4.0  # doubled
    clock.now_s += 4.0
    box.claim("cloud", limit=1, lease_s=5)
    assert box.fail(item_id, "boom 3") == "failed"  # third attempt was the last
    failed = box.get(item_id)
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 3, "boom 3")
    assert box.pending_count() == 0
    box.close()


def test_fail_retry_after_and_permanent(outbox: Outbox, clock: FakeClock) -> None:
    a, b = outbox.put("cloud", b"a"), outbox.put("cloud", b"b")
    outbox.claim("cloud", limit=2, lease_s=5)
    assert outbox.fail(a, "busy", retry_after_s=30) == "pending"
    assert outbox.get(a).not_before_s == clock.now_s + 30
    assert outbox.fail(b, "bad input", permanent=True) == "failed"
    assert outbox.fail(b, "again") == "failed"  # finished items do not move


def test_not_before_is_respected(outbox: Outbox, clock: FakeClock) -> None:
    later = outbox.put("cloud", b"later", not_before_s=clock.now_s + 60)
    now = outbox.put("cloud", b"now")
    assert [i.id for i in outbox.claim("cloud", limit=5, lease_s=600)] == [now]
    clock.now_s += 59.9
    assert outbox.claim("cloud", limit=5, lease_s=600) == []
    clock.now_s += 0.1
    assert [i.id for i in outbox.claim("cloud", limit=5, lease_s=600)] == [later]


def test_idempotency_key_dedups_put(outbox: Outbox) -> None:
    first = outbox.put("cloud", b"one", idempotency_key="k1")
    again = outbox.put("cloud", b"two", idempotency_key="k1")
    other = outbox.put("cloud", b"three", idempotency_key="k2")
    assert first == again != other
    assert outbox.pending_count() == 2
    assert outbox.get(first).payload == b"one"


def test_bounded_with_error_naming_limit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_items=2)
    a = box.put("cloud", b"a", idempotency_key="a")
    box.put("edge", b"b")
    with pytest.raises(OutboxFullError, match="max_items=2") as info:
        box.put("cloud", b"c")
    assert (info.value.max_items, info.value.status_code, info.value.tier) == (2, 503, "cloud")
    assert isinstance(info.value, TierwiseError)
    assert box.put("cloud", b"a", idempotency_key="a") == a  # a duplicate adds nothing
    [item] = box.claim("cloud", limit=1, lease_s=5)
    box.complete(item.id, b"r")
    box.put("cloud", b"c")  # room again once one was delivered
    assert box.pending_count() == 2
    box.close()


def test_durable_across_reopen_and_purge(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, max_items=10, clock=clock) as box:
        done_id = box.put("cloud", b"a")
        kept_id = box.put("cloud", b"b")
        box.claim("cloud", limit=1, lease_s=5)
        box.complete(done_id, b"result-a")
    with Outbox(path, max_items=10, clock=clock) as box:
        assert box.get(done_id).result == b"result-a"
        assert box.get(kept_id).status == "pending"
        clock.now_s += 100
        assert box.purge_done(older_than_s=200) == 0
        assert box.purge_done(older_than_s=50) == 1
        with pytest.raises(OutboxItemNotFoundError) as info:
            box.get(done_id)
        assert info.value.status_code == 404
        assert box.get(kept_id).payload == b"b"
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [({"max_items": 0}, "max_items"), ({"max_items": 5, "backoff_base_s": -1}, "backoff_base_s")],
)
def test_bad_settings_name_the_parameter(tmp_path: Path, kwargs: Any, parameter: str) -> None:
    with pytest.raises(ConfigError, match=parameter):
        Outbox(tmp_path / "o.db", **kwargs)


def test_bad_arguments(outbox: Outbox) -> None:
    with pytest.raises(ConfigError, match="callback_url"):
        outbox.put("cloud", b"p", callback_url="ftp://host/x")
    with pytest.raises(ConfigError, match="meta"):
        outbox.put("cloud", b"p", meta={"x": object()})
    with pytest.raises(ConfigError, match="lease_s"):
        outbox.claim("cloud", limit=1, lease_s=0)
    assert outbox.pending_count() == 0


# -- drainer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("poll_s", 0),
        ("lease_s", -1.0),
        ("batch_size", 0),
        ("batch_size", True),
        ("callback_attempts", 0),
        ("callback_backoff_s", -0.1),
        ("callback_timeout_s", float("inf")),
        ("callback_content_type", "application/json\r\nx-injected: 1"),
        ("callback_max_response_bytes", 0),
        ("batch", 4),  # unknown: the setting is batch_size
    ],
)
def test_drainer_settings_name_the_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        DrainerSettings.model_validate({field: value})


def test_drainer_takes_settings_only_as_a_model(tmp_path: Path) -> None:
    async def deliver(item: OutboxItem) -> bytes:
        return b""

    with Outbox(tmp_path / "o.db", max_items=1) as box:
        drainer = Drainer(box, "cloud", deliver, lambda: True)
        assert drainer.settings == DrainerSettings()
        with pytest.raises(ConfigError, match="settings"):
            Drainer(box, "cloud", deliver, lambda: True, {"poll_s": 1.0})  # type: ignore[arg-type]


async def test_drainer_waits_while_unhealthy_then_drains(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_items=10)
    ids = [box.put("cloud", request_body(i)) for i in range(3)]
    healthy = False
    seen: list[str] = []

    async def deliver(item: OutboxItem) -> bytes:
        seen.append(item.id)
        request = decode_request(item.payload)
        response = InferResponse(model_name="m", outputs={"y": request.inputs["x"] * 2})
        return encode_response(response)[0]

    settings = DrainerSettings(poll_s=0.02, batch_size=2)
    async with Drainer(box, "cloud", deliver, lambda: healthy, settings):
        await asyncio.sleep(0.3)
        assert seen == []
        assert box.pending_count() == 3
        healthy = True
        await wait_for(lambda: box.pending_count() == 0)
    assert sorted(seen) == sorted(ids)
    for i, item_id in enumerate(ids):  # results fetchable by id
        result = box.get(item_id).result
        assert result is not None
        assert decode_response(result).outputs["y"].tolist() == [2.0 * i]
    box.close()


async def test_drainer_retries_failures_and_stops_on_permanent(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_items=10, backoff_base_s=0.01)
    flaky = box.put("cloud", b"flaky")
    bad = box.put("cloud", b"bad")
    calls: Counter[bytes] = Counter()

    async def deliver(item: OutboxItem) -> bytes:
        calls[item.payload] += 1
        if item.payload == b"bad":
            raise ConfigError("inputs", "a valid request")  # status 400: never retried
        if calls[item.payload] < 3:
            raise ConnectionError("uplink down")
        return b"ok"

    drainer = Drainer(box, "cloud", deliver, lambda: True, DrainerSettings(poll_s=0.01))
    drainer.start()
    await wait_for(lambda: box.pending_count() == 0)
    await drainer.stop()
    assert not drainer.running
    assert (box.get(flaky).status, box.get(flaky).attempts) == ("done", 3)
    assert box.get(bad).status == "failed"
    assert "a valid request" in (box.get(bad).last_error or "")
    assert calls == {b"flaky": 3, b"bad": 1}
    box.close()


class CallbackServer:
    """A loopback HTTP server recording POSTs; answers 503 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 503 if len(owner.received) <= owner.fail_first else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/done"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


async def test_callback_delivery_with_retry(tmp_path: Path) -> None:
    server = CallbackServer(fail_first=1)
    box = Outbox(tmp_path / "o.db", max_items=10)
    try:
        item_id = box.put("cloud", b"req", idempotency_key="k-1", callback_url=server.url)

        async def deliver(item: OutboxItem) -> bytes:
            return b'{"answer": 42}'

        settings = DrainerSettings(poll_s=0.02, callback_backoff_s=0.01)
        drainer = Drainer(box, "cloud", deliver, lambda: True, settings)
        async with drainer:
            await wait_for(lambda: box.get(item_id).callback_status == "delivered")
        assert len(server.received) == 2  # one 503, then delivered
        headers, body = server.received[-1]
        assert body == b'{"answer": 42}'
        assert (headers["idempotency-key"], headers["tierwise-outbox-item"]) == ("k-1", item_id)
        assert box.get(item_id).result == b'{"answer": 42}'
    finally:
        box.close()
        server.close()


async def test_callback_failure_keeps_result_and_orphans_are_resent(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/cb"  # nothing listens
    server = CallbackServer()
    box = Outbox(tmp_path / "o.db", max_items=10)
    try:
        lost = box.put("cloud", b"a", callback_url=dead_url)
        # completed by a deliverer that died before posting its callback
        orphan = box.put("cloud", b"b", callback_url=server.url)
        box.claim("cloud", limit=2, lease_s=0.05)
        box.complete(orphan, b"orphan-result")
        box.fail(lost, "crash", retry_after_s=0)

        async def deliver(item: OutboxItem) -> bytes:
            return b"lost-result"

        settings = DrainerSettings(
            poll_s=0.02, callback_attempts=2, callback_backoff_s=0.01, callback_timeout_s=1.0
        )
        drainer = Drainer(box, "cloud", deliver, lambda: True, settings)
        async with drainer:
            await wait_for(lambda: box.get(lost).callback_status == "failed")
            await wait_for(lambda: box.get(orphan).callback_status == "delivered")
        assert box.get(lost).result == b"lost-result"
        assert [body for _, body in server.received] == [b"orphan-result"]
    finally:
        box.close()
        server.close()


class RecordingTransport:
    """A transport answering every request itself, recording what it was sent."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.sent: list[HttpRequest] = []
        self.closed = False

    async def handle(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        return HttpResponse(self.status_code)

    async def aclose(self) -> None:
        self.closed = True


async def test_callbacks_go_through_the_client_given(tmp_path: Path) -> None:
    transport = RecordingTransport(200)
    client = HttpClient(transport=transport)
    box = Outbox(tmp_path / "o.db", max_items=10)
    try:
        item_id = box.put("cloud", b"req", callback_url="http://callback.example/done?x=1")

        async def deliver(item: OutboxItem) -> bytes:
            return b"result"

        settings = DrainerSettings(poll_s=0.02, callback_content_type="application/x-custom")
        async with Drainer(box, "cloud", deliver, lambda: True, settings, client=client):
            await wait_for(lambda: box.get(item_id).callback_status == "delivered")
        [sent] = transport.sent
        assert (sent.method, sent.url, sent.content) == (
            "POST", "http://callback.example/done?x=1", b"result",
        )  # fmt: skip
        assert sent.headers is not None
        assert sent.headers["content-type"] == "application/x-custom"
        assert sent.timeout_s == settings.callback_timeout_s
        assert not transport.closed  # the caller's client stays open
    finally:
        box.close()
        await client.aclose()
