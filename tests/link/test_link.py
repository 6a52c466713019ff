"""The link emulator on loopback: round trips follow the fitted distribution, bandwidth
paces the bytes, partitions hold or reset connections and heal, the control endpoint and
the CLI steer it, and bad settings are refused by name."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import numpy as np
import pytest

from server_helpers import free_port, running_app
from tierwise.errors import ConfigError
from tierwise.link import LinkControlApp, LinkRelay, LinkSettings, RttModel

# -- the round-trip model -------------------------------------------------------------------


def test_the_model_goes_through_p50_and_p99() -> None:
    model = RttModel(20.0, 80.0)
    assert model.quantile_ms(0.5) == pytest.approx(20.0)
    assert model.quantile_ms(0.99) == pytest.approx(80.0)
    drawn = model.samples_ms(np.random.default_rng(7), 200_000)
    assert np.quantile(drawn, 0.5) == pytest.approx(20.0, rel=0.02)
    assert np.quantile(drawn, 0.99) == pytest.approx(80.0, rel=0.03)
    one_by_one = [model.sample_ms(random.Random(3)) for _ in range(3)]
    assert len(set(one_by_one)) == 1  # one seed, one stream
    assert RttModel(5.0, 5.0).sample_ms(random.Random(1)) == 5.0
    assert RttModel(0.0, 0.0).samples_ms(np.random.default_rng(1), 3).tolist() == [0.0] * 3


@pytest.mark.parametrize(
    ("p50", "p99", "field"),
    [(20.0, 10.0, "rtt_p99_ms"), (-1.0, 5.0, "rtt_p50_ms"), (float("nan"), 5.0, "rtt_p50_ms")],
)
def test_bad_round_trips_are_refused(p50: float, p99: float, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RttModel(p50, p99)


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="rtt_p99_ms"):
        LinkSettings(target_port=80, rtt_p50_ms=20, rtt_p99_ms=10)
    with pytest.raises(ValueError, match="bandwidth_mbps"):
        LinkSettings(target_port=80, bandwidth_mbps=0)
    with pytest.raises(ValueError, match="partition_mode"):
        LinkSettings.model_validate({"target_port": 80, "partition_mode": "drop"})


# -- a relay in front of a real server --------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each line with the same line; ``SINK n`` reads n bytes, then answers."""
    try:
        while line := await reader.readline():
            if line.startswith(b"SINK "):
                await reader.readexactly(int(line.split()[1]))
                line = b"done\n"
            writer.write(line)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _relay(**extra: object) -> AsyncIterator[LinkRelay]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay = LinkRelay(LinkSettings.model_validate({"target_port": port, "seed": 1, **extra}))
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()
        server.close()


async def _round_trips(port: int, n: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for i in range(n):
        started = time.perf_counter()
        writer.write(f"ping {i}\n".encode())
        await writer.drain()
        assert await reader.readline() == f"ping {i}\n".encode()
        times.append((time.perf_counter() - started) * 1000)
    writer.close()
    return times


async def test_round_trips_follow_the_distribution() -> None:
    async with _relay(rtt_p50_ms=20, rtt_p99_ms=60) as relay:
        measured = np.array(await _round_trips(relay.port, 300))
    # the drawn delays plus loopback and scheduling (a millisecond or two)
    assert 19.0 <= np.quantile(measured, 0.5) <= 26.0
    assert 45.0 <= np.quantile(measured, 0.99) <= 90.0
    assert measured.min() >= RttModel(20, 60).quantile_ms(0.0005) * 0.9
    assert relay.stats.connections == 1
    assert relay.stats.bytes_up == relay.stats.bytes_down > 0


async def test_bandwidth_paces_the_bytes() -> None:
    size = 1_000_000  # 8 Mbit at 8 Mbit/s: one second
    async with _relay(bandwidth_mbps=8) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        started = time.perf_counter()
        writer.write(f"SINK {size}\n".encode() + b"x" * size)
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 10) == b"done\n"
        elapsed = time.perf_counter() - started
        writer.close()
    assert 0.95 <= elapsed <= 2.5


async def test_a_blackholed_link_holds_bytes_until_it_heals() -> None:
    async with _relay(rtt_p50_ms=1) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"before\n")
        assert await reader.readline() == b"before\n"
        relay.partition()
        writer.write(b"during\n")
        pending = asyncio.ensure_future(reader.readline())
        done, _ = await asyncio.wait({pending}, timeout=0.5)
        assert not done  # held
        # a new connection waits for the link too
        late_reader, late_writer = await asyncio.open_connection("127.0.0.1", relay.port)
        late_writer.write(b"late\n")
        relay.heal()
        assert await asyncio.wait_for(pending, 5) == b"during\n"  # same connection
        assert await asyncio.wait_for(late_reader.readline(), 5) == b"late\n"
        assert relay.status()["partitions"] == 1
        writer.close()
        late_writer.close()


async def test_a_reset_link_closes_and_refuses_until_it_heals() -> None:
    async with _relay(partition_mode="reset") as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"a\n")
        assert await reader.readline() == b"a\n"
        relay.partition()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
        refused_reader, refused_writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await asyncio.wait_for(refused_reader.read(), 5) == b""
        assert relay.stats.refused == 1
        writer.close()
        refused_writer.close()
        relay.heal()
        assert len(await _round_trips(relay.port, 2)) == 2


# -- the control endpoint and the CLI -----------------------------------------------------------


@pytest.fixture
def echo_port() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(_echo, "127.0.0.1", 0))
    port = int(server.sockets[0].getsockname()[1])
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(server.wait_closed())
        loop.close()


def _ping(port: int, timeout_s: float = 5.0) -> bytes:
    """One line there and back; b"" when the link closes the connection (or resets it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(b"hello\n")
            return sock.recv(100)
        except ConnectionResetError:
            return b""


def test_the_control_endpoint_steers_the_link(echo_port: int) -> None:
    relay = LinkRelay(LinkSettings(target_port=echo_port))
    with (
        running_app(LinkControlApp(relay)) as (_, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as control,
    ):
        status = control.get("/v1/link").json()
        assert status["up"] is True
        assert _ping(relay.port) == b"hello\n"
        assert control.post("/v1/link/partition", params={"mode": "reset"}).json()["up"] is False
        assert _ping(relay.port) == b""  # refused
        assert control.post("/v1/link/heal").json()["up"] is True
        shaped = control.put("/v1/link", json={"rtt_p50_ms": 30, "bandwidth_mbps": 50}).json()
        assert (shaped["rtt_p50_ms"], shaped["rtt_p99_ms"], shaped["bandwidth_mbps"]) == (
            30.0, 30.0, 50.0,
        )  # fmt: skip
        started = time.perf_counter()
        assert _ping(relay.port) == b"hello\n"
        assert time.perf_counter() - started >= 0.03
        bad = control.put("/v1/link", json={"rtt_p50_ms": "slow"})
        assert bad.status_code == 400
        assert "rtt_p50_ms" in bad.json()["error"]
        assert control.put("/v1/link", json={"latency": 3}).status_code == 400
        assert control.post("/v1/link/partition", params={"mode": "drop"}).status_code == 400


def test_the_cli_relays_and_obeys_signals(echo_port: int) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tierwise", "link", "--to", f"127.0.0.1:{echo_port}",
         "--listen", f"127.0.0.1:{port}", "--rtt-p50-ms", "40", "--seed", "3"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"link 127.0.0.1:{port} -> ")
        started = time.perf_counter()
        assert _ping(port) == b"hello\n"
        assert time.perf_counter() - started >= 0.04
        process.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        with pytest.raises(TimeoutError):
            _ping(port, timeout_s=0.5)
        process.send_signal(signal.SIGUSR2)
        time.sleep(0.3)
        assert _ping(port) == b"hello\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "nowhere"], "--to"),
        (["--to", ":80", "--rtt-p50-ms", "20", "--rtt-p99-ms", "5"], "rtt_p99_ms"),
        (["--to", ":80", "--control", "10.1.2.3:9000"], "loopback"),
        (["--to", ":80", "--partition-mode", "drop"], "partition_mode"),
    ],
)
def test_bad_options_exit_2_naming_them(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tierwise", "link", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
