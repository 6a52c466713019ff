"""LocalTier and RemoteTier against real models and a real tier server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from onnx_models import scale_model
from server_helpers import RunningServer, free_port, running_server
from tierwise.errors import (
    TierRejectedError,
    TierTimeoutError,
    TierUnavailableError,
)
from tierwise.protocol import InferRequest
from tierwise.router.tiers import LocalTier, RemoteTier
from tierwise.runtime import OnnxBackend
from tierwise.server import ServerSettings

X = np.arange(8, dtype=np.float32).reshape(2, 4)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    repo = tmp_path_factory.mktemp("repo")
    scale_model(repo / "scale" / "1" / "model.onnx", 3.0)
    with running_server(ServerSettings(model_repo=repo)) as running:
        yield running


async def test_local_tier(tmp_path: Path) -> None:
    backend = OnnxBackend("scale", scale_model(tmp_path / "m.onnx", 2.0))
    await backend.load()
    tier = LocalTier("device", backend)
    response = await tier.infer(InferRequest(inputs={"x": X}, id="r1"), timeout_s=1)
    np.testing.assert_array_equal(response.outputs["y"], X * 2)
    assert response.id == "r1"
    await tier.close()


@pytest.mark.parametrize("binary", [None, True, False])
async def test_remote_tier_round_trip(server: RunningServer, binary: bool | None) -> None:
    tier = RemoteTier("cloud", server.url, "scale", binary=binary)
    response = await tier.infer(InferRequest(inputs={"x": X}, id="r2"), timeout_s=5)
    np.testing.assert_array_equal(response.outputs["y"], X * 3)
    assert response.id == "r2"
    assert response.model_version == "1"
    if binary is None:
        assert tier._binary is True  # learned from GET /v2's extensions
    await tier.close()


async def test_remote_tier_sends_the_auth_header_and_reuses_connections(
    server: RunningServer,
) -> None:
    seen: list[bytes] = []
    connections = 0
    finished: list[asyncio.Future[None]] = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A TCP relay in front of the tier server that records every request head."""
        nonlocal connections
        connections += 1
        done = asyncio.get_running_loop().create_future()
        finished.append(done)
        upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", server.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: bool) -> None:
            while data := await src.read(65536):
                if log and b"\r\n\r\n" in data:
                    seen.append(data.split(b"\r\n\r\n", 1)[0])
                dst.write(data)
            dst.close()

        await asyncio.gather(pump(reader, upstream_w, True), pump(upstream_r, writer, False))
        for w in (writer, upstream_w):
            await w.wait_closed()
        done.set_result(None)

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = relay_server.sockets[0].getsockname()[1]
    tier = RemoteTier(
        "cloud", f"http://127.0.0.1:{port}", "scale", authorization="Bearer s3cret", binary=False
    )
    for _ in range(3):
        await tier.infer(InferRequest(inputs={"x": X}), timeout_s=5)
    await tier.close()
    await asyncio.wait_for(asyncio.gather(*finished), 10)  # the relay's connections ended
    relay_server.close()
    await relay_server.wait_closed()
    assert len(seen) == 3
    assert all(b"\r\nauthorization: Bearer s3cret" in head for head in seen)
    assert connections == 1  # keep-alive: one connection for all three calls


async def test_remote_errors_are_classified(server: RunningServer) -> None:
    wrong = RemoteTier("cloud", server.url, "scale", binary=False)
    with pytest.raises(TierRejectedError, match="HTTP 400") as rejected:
        await wrong.infer(InferRequest(inputs={"x": np.zeros((1, 5), np.float32)}), timeout_s=5)
    assert rejected.value.status_code == 400
    await wrong.close()

    missing = RemoteTier("cloud", server.url, "nope", binary=False)
    with pytest.raises(TierRejectedError, match="HTTP 404"):
        await missing.infer(InferRequest(inputs={"x": X}), timeout_s=5)
    await missing.close()

    down = RemoteTier("cloud", f"http://127.0.0.1:{free_port()}", "scale", binary=False)
    with pytest.raises(TierUnavailableError, match="ConnectionRefusedError"):
        await down.infer(InferRequest(inputs={"x": X}), timeout_s=2)
    await down.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts and reads but never answers."""
    writers: list[asyncio.StreamWriter] = []
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(65536)
        await release.wait()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    release.set()
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def test_remote_timeout(silent_server: str) -> None:
    tier = RemoteTier("cloud", silent_server, "scale", binary=False)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TierTimeoutError, match="no answer within 200 ms") as info:
        await tier.infer(InferRequest(inputs={"x": X}), timeout_s=0.2)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert info.value.status_code == 504
    await tier.close()
