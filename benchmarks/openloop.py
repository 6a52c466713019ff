"""An open-loop HTTP load generator: POSTs one body at a fixed rate, whatever the answers do.

wrk keeps a fixed number of requests in flight (closed loop): a slow answer delays the
next request, so the offered rate drifts with the latency being measured, and wrk2 (which
paces requests) is not packaged here. This sends request ``i`` at ``start + i / rate``
on any idle keep-alive connection, opening another (up to ``--max-connections``) when
all are busy, so the offered rate never depends on the server. Latency is taken from the
moment the request is written to the moment its whole response is read; how late each
send was against its schedule is recorded too (``send_lag_ms``), so a generator that
cannot keep up shows.

Targets are measured in alternating phases (A for ``--phase-s``, then B, then A, ...),
``--rounds`` times, after a warm-up phase on each, so that slow drift of the machine
(frequency, other processes) falls on all targets alike.

The HTTP client is a few lines over asyncio streams on uvloop (HTTP/1.1 keep-alive,
Content-Length bodies only): cheaper and steadier than a general client, so the
generator's own noise stays small next to the sub-millisecond differences measured.

Usage: python benchmarks/openloop.py --rate 500 --body FILE --out OUT.json URL [URL ...]
Writes ``{"overruns": n, url: {"latencies_ms": [...], "send_lag_ms": [...], "errors": n,
...}}`` (``overruns``: sends that waited because every connection was busy).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import uvloop


@dataclass
class Target:
    url: str
    host: str
    port: int
    request: bytes
    idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=deque)
    open_connections: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0
    phase_s: float = 0.0

    @classmethod
    def of(cls, url: str, body: bytes, content_type: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise SystemExit(f"expected http://HOST:PORT/PATH, got {url!r}")
        head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return cls(url, parts.hostname, parts.port, head.encode() + body)


async def _exchange(
    target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> int:
    writer.write(target.request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


class Generator:
    def __init__(self, targets: list[Target], rate: float, max_connections: int) -> None:
        self.targets = targets
        self.rate = rate
        self.max_connections = max_connections
        self.overruns = 0

    async def _one(self, target: Target, due: float, record: bool) -> None:
        loop_now = time.perf_counter
        if target.idle:
            reader, writer = target.idle.popleft()
        else:
            target.open_connections += 1
            try:
                reader, writer = await asyncio.open_connection(target.host, target.port)
            except OSError:
                target.open_connections -= 1
                target.errors += record
                return
        started = loop_now()
        try:
            status = await asyncio.wait_for(_exchange(target, reader, writer), timeout=10)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            target.open_connections -= 1
            writer.close()
            target.errors += record
            return
        finished = loop_now()
        target.idle.append((reader, writer))
        if not record:
            return
        if status != 200:
            target.errors += 1
            return
        target.latencies_ms.append((finished - started) * 1000.0)
        target.send_lag_ms.append((started - due) * 1000.0)

    async def phase(self, target: Target, seconds: float, *, record: bool) -> None:
        """Send to ``target`` at the fixed rate for ``seconds``; wait for the stragglers."""
        count = max(1, round(seconds * self.rate))
        pending: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.005
        for i in range(count):
            due = start + i / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= self.max_connections:
                # Every connection is busy: the server is far behind; wait for one rather
                # than open without bound (counted below as an overrun).
                self.overruns += record
                await asyncio.wait(list(pending), return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(self._one(target, due, record))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(list(pending), timeout=15)
        if record:
            target.sent += count
            target.phase_s += time.perf_counter() - start

    async def run(self, phase_s: float, rounds: int, warmup_s: float) -> None:
        for target in self.targets:
            await self.phase(target, warmup_s, record=False)
        for _ in range(rounds):
            for target in self.targets:
                await self.phase(target, phase_s, record=True)
        for target in self.targets:
            while target.idle:
                _, writer = target.idle.popleft()
                writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="Open-loop fixed-rate HTTP POST load.")
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--phase-s", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.rate <= 0 or args.phase_s <= 0 or args.rounds < 1 or args.max_connections < 1:
        raise SystemExit(
            "expected --rate > 0, --phase-s > 0, --rounds >= 1, --max-connections >= 1"
        )
    body = args.body.read_bytes()
    targets = [Target.of(url, body, args.content_type) for url in args.urls]
    generator = Generator(targets, args.rate, args.max_connections)
    uvloop.run(generator.run(args.phase_s, args.rounds, args.warmup_s))
    doc: dict[str, object] = {"overruns": generator.overruns}
    doc |= {
        t.url: {
            "latencies_ms": t.latencies_ms,
            "send_lag_ms": t.send_lag_ms,
            "errors": t.errors,
            "sent": t.sent,
            "achieved_rate": t.sent / t.phase_s if t.phase_s else 0.0,
            "connections": t.open_connections,
        }
        for t in targets
    }
    args.out.write_bytes(orjson.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
