"""Hedging: an interactive request whose remote tier is slow is also sent to the next
remote tier after ``hedge_after_ms``, and the first answer wins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cascade_helpers import write_plan
from server_helpers import RunningServer
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.client import Client
from tierwise.router.settings import RouterSettings
from tierwise.zoo import load_eval


@pytest.fixture
async def slow_edge(tier_servers: tuple[RunningServer, RunningServer]) -> AsyncIterator[str]:
    """A TCP relay in front of the edge server that holds every response for 400 ms."""
    edge, _ = tier_servers
    tasks: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", edge.port)

        async def forward(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float
        ) -> None:
            try:
                while data := await src.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    dst.write(data)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(forward(reader, up_w, 0.0), forward(up_r, writer, 0.4))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        await relay(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()


async def test_slow_edge_is_hedged_by_the_cloud(
    shared_zoo_dir: Path,
    tier_servers: tuple[RunningServer, RunningServer],
    slow_edge: str,
    tmp_path: Path,
) -> None:
    _, cloud = tier_servers
    plan_path = write_plan(tmp_path / "plan.yaml", shared_zoo_dir, slow_edge, cloud.url)
    # threshold 1.0 on the device: every request goes on to the edge
    plan_path.write_text(plan_path.read_text().replace("threshold: 0.9}", "threshold: 1.0}", 1))
    plan = load_plan(plan_path)
    x, _ = load_eval(shared_zoo_dir)
    router = build_router(plan, settings=RouterSettings(hedge_after_ms=50))
    async with Client(plan, router=router) as client:
        started = asyncio.get_running_loop().time()
        result = await client.infer({"image": x[:1]}, workload="digits")
        elapsed_s = asyncio.get_running_loop().time() - started
    assert result.tier == "cloud"
    assert elapsed_s < 0.35  # well under the edge's 400 ms
    by_tier = {a.tier: a for a in result.trace.attempts}
    assert by_tier["edge"].outcome == "skipped"
    assert by_tier["edge"].reason == "hedged: cancelled once cloud answered"
    assert by_tier["cloud"].outcome == "answered"

    unhedged = build_router(plan)
    async with Client(plan, router=unhedged) as client:
        started = asyncio.get_running_loop().time()
        result = await client.infer({"image": x[:1]}, workload="digits")
        elapsed_s = asyncio.get_running_loop().time() - started
    assert elapsed_s >= 0.4  # without hedging the request waits for the slow edge
    assert result.trace.attempts[1].tier == "edge"
    assert result.trace.attempts[1].outcome in ("answered", "escalated")
