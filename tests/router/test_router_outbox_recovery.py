"""Idempotency, and kill -9 of the process holding the outbox with a real receiver on
loopback: nothing lost, nothing acted on twice."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from outbox_helpers import FakeClock, wait_for
from tierwise.errors import ConfigError
from tierwise.outbox import (
    Drainer,
    DrainerSettings,
    Outbox,
    OutboxItem,
)
from tierwise.outbox.idempotency import IdempotencyStore
from tierwise.protocol import (
    InferResponse,
    decode_request,
    decode_response,
    encode_response,
)

WORKER = Path(__file__).with_name("outbox_worker.py")


# -- idempotency ------------------------------------------------------------------------


async def test_run_once_sequential_and_concurrent() -> None:
    store = IdempotencyStore(ttl_s=60, max_entries=100)
    runs: Counter[str] = Counter()

    def work(key: str) -> Callable[[], Any]:
        async def fn() -> bytes:
            runs[key] += 1
            await asyncio.sleep(0.05)
            return f"result-{key}-{runs[key]}".encode()

        return fn

    results = await asyncio.gather(*(store.run_once("a", work("a")) for _ in range(10)))
    assert set(results) == {b"result-a-1"}
    assert await store.run_once("a", work("a")) == b"result-a-1"
    assert await store.run_once("b", work("b")) == b"result-b-1"
    assert runs == {"a": 1, "b": 1}
    assert store.get("a") == b"result-a-1"
    store.close()


async def test_run_once_failure_releases_key() -> None:
    store = IdempotencyStore(ttl_s=60, max_entries=10)
    attempts = 0

    async def flaky() -> bytes:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first try fails")
        return b"ok"

    with pytest.raises(RuntimeError, match="first try"):
        await store.run_once("k", flaky)
    assert await store.run_once("k", flaky) == b"ok"
    assert await store.run_once("k", flaky) == b"ok"
    assert attempts == 2
    store.close()


async def test_run_once_ttl_and_max_entries(clock: FakeClock) -> None:
    store = IdempotencyStore(ttl_s=10, max_entries=3, clock=clock)
    runs: Counter[str] = Counter()

    async def run(key: str) -> bytes:
        async def fn() -> bytes:
            runs[key] += 1
            return key.encode()

        return await store.run_once(key, fn)

    for key in ("a", "b", "c", "d"):
        clock.now_s += 1
        await run(key)
    assert len(store) == 3  # "a", the oldest, was evicted
    await run("d")
    assert runs["d"] == 1
    await run("a")
    assert runs["a"] == 2
    clock.now_s += 11  # everything expired
    await run("d")
    assert runs["d"] == 2
    store.close()


async def test_run_once_across_processes_sharing_a_file(tmp_path: Path) -> None:
    path = tmp_path / "idem.db"
    first = IdempotencyStore(path, ttl_s=60, max_entries=10, poll_s=0.01)
    second = IdempotencyStore(path, ttl_s=60, max_entries=10, poll_s=0.01)
    runs = 0

    async def slow() -> bytes:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.2)
        return b"once"

    both = await asyncio.gather(first.run_once("k", slow), second.run_once("k", slow))
    assert list(both) == [b"once", b"once"]
    assert runs == 1  # the second saw a running row and waited for it
    first.close()
    second.close()
    with pytest.raises(ConfigError, match="max_entries"):
        IdempotencyStore(path, ttl_s=60, max_entries=0)


# -- kill -9 ----------------------------------------------------------------------------


class Receiver:
    """The receiving tier: acts on each request (counted) behind an IdempotencyStore."""

    def __init__(self, store: IdempotencyStore) -> None:
        self.store = store
        self.requests: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        key = dict(scope["headers"])[b"idempotency-key"].decode()
        self.requests[key] += 1

        async def act() -> bytes:
            self.actions[key] += 1
            request = decode_request(body)
            outputs = {"y": request.inputs["x"] * 2}
            return encode_response(InferResponse(model_name="m", outputs=outputs, id=key))[0]

        result = await self.store.run_once(key, act)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": result})


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, str]]:
    app = Receiver(IdempotencyStore(tmp_path / "receiver.db", ttl_s=3600, max_entries=10_000))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", access_log=False, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("receiver did not start")
        time.sleep(0.01)
    yield app, f"http://127.0.0.1:{port}/v2/models/m/infer"
    server.should_exit = True
    thread.join(timeout=10)
    app.store.close()


def run_worker_until(
    args: list[str], stop_at: Callable[[list[str]], bool], timeout_s: float = 30.0
) -> list[list[str]]:
    """Start the worker, SIGKILL it as soon as ``stop_at(line)`` is true; its output lines."""
    process = subprocess.Popen(
        [sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(timeout_s, process.kill)
    watchdog.start()
    lines: list[list[str]] = []
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.append(raw.split())
            if stop_at(lines[-1]):
                process.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        process.kill()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "worker ended before it was killed"
    return lines


async def drain_rest(db: Path, url: str) -> None:
    """Restart: reopen the outbox and drain it through a Drainer to the receiver."""
    async with httpx.AsyncClient(timeout=10.0) as client:

        async def deliver(item: OutboxItem) -> bytes:
            headers = {"idempotency-key": item.idempotency_key or item.id}
            response = await client.post(url, content=item.payload, headers=headers)
            response.raise_for_status()
            return response.content

        with Outbox(db, max_items=1000) as box:
            settings = DrainerSettings(poll_s=0.02, lease_s=5)
            async with Drainer(box, "cloud", deliver, lambda: True, settings):
                await wait_for(lambda: box.pending_count() == 0, timeout_s=30)


def check_all_delivered_once(db: Path, receiver: Receiver, put_keys: set[str]) -> set[str]:
    """Every item the worker put is done with its result, acted on exactly once; the DB
    holds no duplicate and passes its integrity check. Returns the keys in the DB."""
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT idempotency_key, status, result FROM outbox_items").fetchall()
    conn.close()
    keys = {row[0] for row in rows}
    assert len(keys) == len(rows)
    assert put_keys <= keys
    for key, status, result in rows:
        assert status == "done", key
        expected = 2.0 * int(key.removeprefix("key-"))
        assert decode_response(result).outputs["y"].tolist() == [expected]
        assert receiver.requests[key] >= 1
    assert set(receiver.actions) == keys
    assert set(receiver.actions.values()) == {1}, receiver.actions
    return keys


async def test_kill9_mid_delivery_loses_nothing_and_acts_once(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    db = tmp_path / "outbox.db"
    # kill while the third item is delivered but not yet completed (held 5 s)
    delivered = 0

    def stop_at(words: list[str]) -> bool:
        nonlocal delivered
        delivered += words[0] == "delivered"
        return delivered == 3

    lines = run_worker_until([str(db), url, "8", "5.0", "0.5", "2"], stop_at)
    put_keys = {w[1] for w in lines if w[0] == "put"}
    assert len(put_keys) == 8
    in_flight = lines[-1][1]
    assert lines[-1][0] == "delivered"
    assert app.requests[in_flight] == 1
    with Outbox(db, max_items=100) as box:
        assert box.pending_count() == 6  # two completed, one leased by the dead worker
        assert box.put("cloud", b"dup", idempotency_key=in_flight) == lines[-1][2]
    await drain_rest(db, url)
    check_all_delivered_once(db, app, put_keys)
    assert app.requests[in_flight] == 2  # delivered twice ...
    assert app.actions[in_flight] == 1  # ... acted on once


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_kill9_at_random_points(
    tmp_path: Path, receiver: tuple[Receiver, str], seed: int
) -> None:
    app, url = receiver
    db = tmp_path / "outbox.db"
    count = 40
    rng = random.Random(seed)
    # 40 puts then 40 deliveries: kill at a random output line among them
    kill_after = rng.randrange(2, 2 * count)
    seen = 0

    def stop_at(words: list[str]) -> bool:
        nonlocal seen
        seen += words[0] in ("put", "completed")
        return seen >= kill_after

    lines = run_worker_until([str(db), url, str(count), "0", "0.3"], stop_at)
    put_keys = {w[1] for w in lines if w[0] == "put"}
    await drain_rest(db, url)
    keys = check_all_delivered_once(db, app, put_keys)
    assert len(keys) <= len(put_keys) + 1  # at most the put cut short by the kill
