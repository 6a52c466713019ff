"""Rollout benchmark: how fast a bad version leaves the canary pool, and how many nodes
one control plane holds.

1. **Rollback time.** A fleet on loopback (a real OCI registry, ``tierwise control``,
   four ``tierwise agent`` processes, two of them canaries, under load) gets a version
   whose p99 latency is far worse. Measured: from the first canary node serving it to
   every canary node serving the previous version again. Target: <= 2 analysis
   intervals + 5 s (Flagger's example setup takes interval x threshold = 60 s x 10).
2. **Heartbeat capacity.** 10,000 simulated nodes heartbeat every 10 s (1,000
   heartbeats/s, open loop: each is timed from when it was due, so a slow server cannot
   hide behind a slow client) against a control plane on a SQLite store for ``--seconds``.
   Target: p99 <= 50 ms, and no lost state: afterwards every node is in the store with
   the counters of the last heartbeat it was answered for.

Prints one JSON line; exits 1 when a target is missed. ``--audit-out FILE`` writes the
rollback's audit log there, as ``tierwise control audit`` prints it, then each entry's
evidence as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the fleet harness

from harness import free_port, server

ROLLBACK_SLACK_S = 5.0
P99_TARGET_S = 0.050


def _rollback_time(interval_s: float, audit_out: Path | None) -> dict[str, Any]:
    from control_fleet import Load, running_fleet
    from tierwise.control.render import audit_lines

    with (
        tempfile.TemporaryDirectory() as tmp,
        running_fleet(
            Path(tmp),
            nodes=4,
            canaries=2,
            versions=("1.0.0", "2.0.0-heavy"),
            heartbeat_s=min(0.5, interval_s / 4),
        ) as fleet,
        Load(fleet.nodes, per_node_per_s=20),
    ):
        canaries = fleet.canaries()
        with fleet.client() as client:
            answer = client.post(
                "/v1/rollouts",
                json={
                    "bundle": "classifier",
                    "ref": "2.0.0-heavy",
                    "stages": "canary,100",
                    "interval_s": interval_s,
                    "threshold": 2,
                    "min_requests": 20,
                },
            )
            answer.raise_for_status()
            rollout = answer.json()["id"]
        reached = back = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            versions = [n.version() for n in canaries]
            now = time.monotonic()
            if reached is None and "2.0.0-heavy" in versions:
                reached = now
            if reached is not None and all(v == "1.0.0" for v in versions):
                back = now
                break
            time.sleep(0.05)
        doc = fleet.rollout(rollout)
        if audit_out is not None:
            with fleet.client() as client:
                entries = client.get("/v1/audit", params={"rollout": rollout}).json()["entries"]
            evidence = [orjson.dumps(e, option=orjson.OPT_SORT_KEYS).decode() for e in entries]
            audit_out.write_text("\n".join([*audit_lines(entries), "", *evidence]) + "\n")
    seconds = None if reached is None or back is None else back - reached
    return {
        "rollback_s": None if seconds is None else round(seconds, 2),
        "rollback_target_s": 2 * interval_s + ROLLBACK_SLACK_S,
        "interval_s": interval_s,
        "rollout_state": doc.get("state"),
        "rollback_reason": doc.get("reason"),
    }


def _beat(node: int, beat: int, port: int) -> bytes:
    body = orjson.dumps(
        {
            "node": f"sim-{node:05d}",
            "labels": {"site": f"s{node % 50}", "hw": "pi5"},
            "sent_s": time.time(),
            "address": f"http://10.0.{node // 250}.{node % 250}:8001",
            "status": {
                "bundles": {
                    "classifier": {
                        "version": "1.0.0",
                        "digest": "sha256:" + "a" * 64,
                        "ready": True,
                        "previous": [],
                        "models": {"small": True},
                    }
                },
                "health": {"live": True, "ready": True},
                "queue_depth": 0,
            },
            "counters": {
                "classifier": {
                    "started_s": 1.0,
                    "digest": "sha256:" + "a" * 64,
                    "requests": beat,
                    "errors": 0,
                    "latency_bounds_s": [0.001, 0.005, 0.025, 0.1],
                    "latency_counts": [0, beat, beat, beat, beat],
                    "energy_j": 0.0,
                    "inferences": 0,
                    "agree": 0,
                    "disagree": 0,
                    "routed": 0,
                    "fallbacks": 0,
                }
            },
        }
    )
    head = (
        f"POST /v1/nodes/sim-{node:05d}/heartbeat HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int,
    jobs: asyncio.Queue[tuple[float, int, int]],
    latencies: list[float],
    acked: dict[int, int],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        due, node, beat = await jobs.get()
        try:
            writer.write(_beat(node, beat, port))
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if b" 200 " not in status_line:
                errors.append(status_line.decode().strip())
            else:
                latencies.append(time.monotonic() - due)
                acked[node] = max(acked.get(node, 0), beat)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(repr(exc))
            return
        finally:
            jobs.task_done()


async def _drive(
    port: int, nodes: int, period_s: float, seconds: float, conns: int
) -> dict[str, Any]:
    jobs: asyncio.Queue[tuple[float, int, int]] = asyncio.Queue()
    latencies: list[float] = []
    acked: dict[int, int] = {}
    errors: list[str] = []
    workers = [
        asyncio.create_task(_connection(port, jobs, latencies, acked, errors)) for _ in range(conns)
    ]
    start = time.monotonic() + 0.5
    rate = nodes / period_s
    total = int(seconds * rate)
    for i in range(total):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        jobs.put_nowait((due, i % nodes, i // nodes + 1))
    await asyncio.wait_for(jobs.join(), timeout=120)
    for worker in workers:
        worker.cancel()
    latencies.sort()
    return {
        "sent": total,
        "answered": len(latencies),
        "errors": errors[:5],
        "error_count": len(errors),
        "p50_s": latencies[len(latencies) // 2] if latencies else None,
        "p99_s": latencies[int(len(latencies) * 0.99) - 1] if latencies else None,
        "max_s": latencies[-1] if latencies else None,
        "achieved_per_s": round(len(latencies) / seconds, 1),
        "acked": acked,
    }


def _generator(port: int, nodes: int, period_s: float, seconds: float, out: Any) -> None:
    out.send(asyncio.run(_drive(port, nodes, period_s, seconds, conns=64)))


def _capacity(nodes: int, period_s: float, seconds: float) -> dict[str, Any]:
    from tierwise.control.store_open import open_control_store
    from tierwise.registry import LocalStore, generate_keys

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        LocalStore(root / "registry", create=True).close()
        keys = generate_keys(root / "keys", "bench")
        port = free_port()
        db = root / "control.db"
        command = [
            sys.executable,
            "-m",
            "tierwise",
            "control",
            "--store",
            str(db),
            "--registry",
            str(root / "registry"),
            "--trusted-key",
            str(keys.public_path),
            "--port",
            str(port),
        ]
        with server(command, f"http://127.0.0.1:{port}/v1/health/ready", log=root / "control.log"):
            receive, send = multiprocessing.Pipe(duplex=False)
            process = multiprocessing.Process(
                target=_generator, args=(port, nodes, period_s, seconds, send)
            )
            process.start()
            result: dict[str, Any] = receive.recv()
            process.join()
            count = httpx.get(
                f"http://127.0.0.1:{port}/v1/nodes?selector=hw%3Dpi5", timeout=60
            ).json()["count"]
        acked: dict[int, int] = result.pop("acked")
        store = open_control_store(str(db))  # after the server stopped: what is on disk
        try:
            stored = {r.node: r for r in store.list_nodes()}
        finally:
            store.close()
        lost = 0
        for node, beat in acked.items():
            record = stored.get(f"sim-{node:05d}")
            got = record.status["counters"]["classifier"]["requests"] if record else -1
            lost += got < beat
    return result | {
        "nodes": nodes,
        "nodes_listed": count,
        "nodes_stored": len(stored),
        "lost_heartbeats": lost,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval-s", type=float, default=2.0)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--period-s", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--skip-fleet", action="store_true", help="Only the capacity part.")
    parser.add_argument("--audit-out", type=Path, help="Write the rollback's audit log here.")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "rollout"}
    misses: list[str] = []
    if not args.skip_fleet:
        rollback = _rollback_time(args.interval_s, args.audit_out)
        result.update(rollback)
        if rollback["rollback_s"] is None or rollback["rollback_s"] > rollback["rollback_target_s"]:
            misses.append("rollback_s")
    capacity = _capacity(args.nodes, args.period_s, args.seconds)
    result["heartbeats"] = capacity
    p99 = capacity["p99_s"]
    if p99 is None or p99 > P99_TARGET_S:
        misses.append("heartbeat p99")
    if (
        capacity["error_count"]
        or capacity["lost_heartbeats"]
        or capacity["nodes_stored"] != args.nodes
    ):
        misses.append("heartbeat state")
    if capacity["achieved_per_s"] < 0.95 * args.nodes / args.period_s:
        misses.append("heartbeat rate")
    result["p99_target_s"] = P99_TARGET_S
    result["misses"] = misses
    print(orjson.dumps(result).decode())
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
