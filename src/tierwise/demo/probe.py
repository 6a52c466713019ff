"""Measuring and loading the live demo fleet for the fidelity check
(:mod:`tierwise.demo.fidelity`): a probe plan with one workload per tier, each tier
probed one call at a time and then with many in flight (its server's own time per batch
and per row read from its metrics), and the replay that sends seeded requests at their
arrival times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tierwise.demo.links import Links
from tierwise.errors import DemoError, TierwiseError
from tierwise.http.client import HttpClient
from tierwise.router.client import Client
from tierwise.sim.fidelity import LiveRequests

__all__ = ["Probe", "batch_stats", "probe_doc", "probe_tier", "replay_open_loop", "server_time"]

PROBE_CALLS = 150
PROBE_WARMUP = 20
#: between probe calls: the fleet idles between requests, as at light load
PROBE_GAP_S = 0.02
THROUGHPUT_S = 2.0
THROUGHPUT_IN_FLIGHT = 16


def probe_doc(doc: Mapping[str, Any], tiers: list[str]) -> dict[str, Any]:
    """The plan with one workload per tier, answered by that tier alone, which scores
    its answers as the plan's first stage on the tier does (the router's work per stage)."""
    base = dict(next(iter(doc["workloads"].values())))
    base.pop("expected", None)
    base.update(privacy="public", residency="any", urgency="interactive")
    stage_of: dict[str, dict[str, Any]] = {}
    for workload in doc["workloads"].values():
        for stage in workload["cascade"]:
            stage_of.setdefault(stage["tier"], dict(stage))
    probes = {}
    for t in tiers:
        stage = stage_of.get(t, {"tier": t})
        cascade: list[dict[str, Any]] = [{"tier": t}]
        other = next((o for o in tiers if o != t), None)
        if stage.get("rule") is not None and other is not None:
            # scored as in the plan, with a threshold nothing is under: never passed on
            cascade = [{**stage, "threshold": 0.0}, {"tier": other}]
        probes[f"probe-{t}"] = {**base, "cascade": cascade}
    return {**doc, "workloads": probes}


@dataclass(frozen=True)
class Probe:
    """One tier probed: call times one at a time (ms), calls per second with many in
    flight, and its server's own time per batch and per row (ms; 0 for a device)."""

    times_ms: list[float]
    rate_per_s: float
    per_batch_ms: float = 0.0
    per_row_ms: float = 0.0


async def batch_stats(server: HttpClient | None, model: str) -> tuple[float, float, float]:
    """(seconds computing, batches, rows) the server has counted for ``model``."""
    if server is None:
        return 0.0, 0.0, 0.0
    from prometheus_client.parser import text_string_to_metric_families

    response = await server.request("GET", "/metrics")
    found = {"compute_sum": 0.0, "batches": 0.0, "rows": 0.0}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name == "tierwise_compute_duration_seconds_sum":
                found["compute_sum"] += sample.value
            elif sample.name == "tierwise_batch_size_count":
                found["batches"] += sample.value
            elif sample.name == "tierwise_batch_size_sum":
                found["rows"] += sample.value
    return found["compute_sum"], found["batches"], found["rows"]


def server_time(
    before: tuple[float, float, float],
    alone: tuple[float, float, float],
    crowded: tuple[float, float, float],
) -> tuple[float, float]:
    """(ms per batch, ms per row) fitted to the batches the server ran one request at a
    time and with many in flight."""
    lone = [b - a for a, b in zip(before, alone, strict=True)]
    many = [b - a for a, b in zip(alone, crowded, strict=True)]
    if lone[1] <= 0 or many[1] <= 0:
        return 0.0, 0.0
    mean_lone, rows_lone = lone[0] / lone[1], lone[2] / lone[1]
    mean_many, rows_many = many[0] / many[1], many[2] / many[1]
    if rows_many - rows_lone < 0.5:  # the calls never batched: all of it per row
        return 0.0, 1000.0 * mean_many / max(rows_many, 1.0)
    per_row = max(0.0, (mean_many - mean_lone) / (rows_many - rows_lone))
    return 1000.0 * max(0.0, mean_lone - per_row * rows_lone), 1000.0 * per_row


async def probe_tier(
    client: Client, workload: str, image: np.ndarray, server: HttpClient | None, model: str
) -> Probe:
    """The ms of calls made one at a time (apart, as light traffic sends them), calls
    per second with many in flight, and the server's time per batch and row from its
    own metrics over the two."""
    inputs = {"image": image[None]}
    for _ in range(PROBE_WARMUP):
        await client.infer(inputs, workload=workload)
    before = await batch_stats(server, model)
    times = []
    for _ in range(PROBE_CALLS):
        started = time.perf_counter()
        await client.infer(inputs, workload=workload)
        times.append((time.perf_counter() - started) * 1000.0)
        await asyncio.sleep(PROBE_GAP_S)
    alone = await batch_stats(server, model)
    done = 0
    stop = time.perf_counter() + THROUGHPUT_S

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await client.infer(inputs, workload=workload)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(THROUGHPUT_IN_FLIGHT)))
    rate = done / (time.perf_counter() - started)
    per_batch, per_row = server_time(before, alone, await batch_stats(server, model))
    return Probe(times, rate, per_batch, per_row)


async def replay_open_loop(
    client: Client,
    partition: tuple[str, float, float] | None,
    traffic: Mapping[str, tuple[np.ndarray, np.ndarray]],
    images: np.ndarray,
    kind_of: Mapping[str, str],
    cut: Links,
) -> LiveRequests:
    """Send every request at its arrival time (open loop), cutting ``partition``'s tier
    for its span; each request is recorded as sent (a sender that falls behind its
    schedule is this machine, not the fleet: the simulator replays the times sent)."""
    loop = asyncio.get_running_loop()
    live = LiveRequests()
    schedule = sorted(
        (at, name, row)
        for name, (times, rows) in traffic.items()
        for at, row in zip(times.tolist(), rows.tolist(), strict=True)
    )
    start = loop.time()
    failures: list[Exception] = []

    def switch(action: Callable[[str], None], tier: str) -> None:
        try:
            action(tier)
        except Exception as exc:  # reported once the replay is over
            failures.append(exc)

    if partition is not None:
        tier, begin, end = partition
        loop.call_at(start + begin, switch, cut.partition, tier)
        loop.call_at(start + end, switch, cut.heal, tier)

    async def one(name: str, row: int) -> None:
        sent = loop.time()
        try:
            result = await client.infer({"image": images[row][None]}, workload=name)
        except TierwiseError:
            live.add(name, sent - start, row, "", float("nan"), True, 0.0)
            return
        latency = (loop.time() - sent) * 1000.0
        live.add(name, sent - start, row, kind_of.get(result.tier or "", ""), latency,
                 result.degraded, result.trace.cost_usd)  # fmt: skip

    tasks = []
    for at, name, row in schedule:
        wait = start + at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(name, row)))
    await asyncio.gather(*tasks)
    if failures:
        raise DemoError(f"the link's partition switch failed: {failures[0]}")
    return live
