"""A user-space link emulator: a TCP relay that adds a round trip, paces bandwidth and can
be partitioned.

Each connection to ``listen`` is relayed to ``target``. On the way to ``target`` every
burst of bytes waits one round trip drawn from the link's :class:`RttModel` (a burst is
what arrives while the previous one is still in flight: it rides with it, so a request
sent in several chunks is delayed once); answers come back without a further delay, so a
request/response exchange takes the drawn round trip plus the target's own time. Both
directions are paced at ``bandwidth_mbps``, shared by every connection (a link is one
pipe), and bytes are delivered in order. Nothing is dropped: a full buffer stops reading
from the sender (TCP's own back-pressure).

A partition in ``blackhole`` mode holds every byte (and leaves new connections waiting
for their upstream) until the link heals, as TCP rides out a short outage, so callers see
time-outs; in ``reset`` mode every connection is closed and new ones are refused at once.
``reshape`` changes the round trip and bandwidth of a running link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Any

from tierwise.errors import ConfigError
from tierwise.link.delay import RttModel
from tierwise.link.settings import LinkSettings, PartitionMode

__all__ = ["LinkRelay", "LinkStats"]

log = logging.getLogger("tierwise.link")

_CHUNK_BYTES = 64 * 1024


@dataclass
class LinkStats:
    """What a link has carried."""

    connections: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    partitions: int = 0


@dataclass
class _Direction:
    """One direction of one connection: when its last burst is delivered, and its delay."""

    queue: asyncio.Queue[tuple[float, bytes] | None]
    last_delivery: float = 0.0
    delay_s: float = 0.0


class LinkRelay:
    """One emulated link (see the module docstring). :meth:`start` listens on the running
    loop; :attr:`port` is the bound port."""

    def __init__(self, settings: LinkSettings) -> None:
        if not isinstance(settings, LinkSettings):
            raise ConfigError("settings", "a LinkSettings", type(settings).__name__)
        self.settings = settings
        self.rtt: RttModel = settings.rtt()
        self.bandwidth_mbps = settings.bandwidth_mbps
        self.mode: PartitionMode = settings.partition_mode
        self.stats = LinkStats()
        self.port = settings.listen_port
        self._rng = random.Random(settings.seed)  # noqa: S311 - delays, not secrets
        self._busy_until = {True: 0.0, False: 0.0}  # by direction: upstream?
        self._up: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue_chunks = max(1, settings.buffer_bytes // _CHUNK_BYTES)
        self._open = 0
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (ConfigError when the address cannot be bound)."""
        self._up = asyncio.Event()
        self._up.set()
        s = self.settings
        try:
            self._server = await asyncio.start_server(
                self._accept, s.listen_host, s.listen_port, limit=_CHUNK_BYTES
            )
        except OSError as exc:
            raise ConfigError(
                "listen", f"a free port on {s.listen_host}", f"{s.listen_port} ({exc})"
            ) from exc
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self._closing = True
        if self._up is not None:
            self._up.set()  # connections waiting for the link end now
        if self._server is not None:
            self._server.close()
            self._server = None
        self._abort_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- control --------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up is None or self._up.is_set()

    def partition(self, mode: PartitionMode | None = None) -> None:
        """Cut the link (``mode`` overrides the settings' for this partition)."""
        if mode is not None and mode not in ("blackhole", "reset"):
            raise ConfigError("mode", "blackhole or reset", mode)
        self.mode = mode or self.settings.partition_mode
        if self._up is not None and self._up.is_set():
            self.stats.partitions += 1
            self._up.clear()
        if self.mode == "reset":
            self._abort_all()

    def heal(self) -> None:
        """Restore the link; held bytes go on in order."""
        if self._up is not None:
            self._up.set()

    def reseed(self) -> None:
        """Start the round trips' stream again from the settings' seed: the next burst
        draws what the first one drew (a rehearsal replays the same network)."""
        self._rng = random.Random(self.settings.seed)  # noqa: S311 - delays, not secrets

    def reshape(
        self,
        *,
        rtt_p50_ms: float | None = None,
        rtt_p99_ms: float | None = None,
        bandwidth_mbps: float | None = None,
    ) -> None:
        """Change the round trip and the bandwidth (a value left None stays)."""
        p50 = self.rtt.p50_ms if rtt_p50_ms is None else rtt_p50_ms
        p99 = self.rtt.p99_ms if rtt_p99_ms is None else rtt_p99_ms
        if rtt_p50_ms is not None and rtt_p99_ms is None and p99 < p50:
            p99 = p50
        self.rtt = RttModel(p50, p99)
        if bandwidth_mbps is not None:
            if not bandwidth_mbps > 0:
                raise ConfigError("bandwidth_mbps", "a positive number", bandwidth_mbps)
            self.bandwidth_mbps = bandwidth_mbps

    def status(self) -> dict[str, Any]:
        """The link's state and counters, as the control endpoint reports them."""
        s = self.settings
        return {
            "listen": f"{s.listen_host}:{self.port}",
            "target": f"{s.target_host}:{s.target_port}",
            "up": self.up,
            "partition_mode": self.mode,
            "rtt_p50_ms": self.rtt.p50_ms,
            "rtt_p99_ms": self.rtt.p99_ms,
            "bandwidth_mbps": self.bandwidth_mbps,
            "open_connections": self._open,
            "connections": self.stats.connections,
            "refused": self.stats.refused,
            "bytes_up": self.stats.bytes_up,
            "bytes_down": self.stats.bytes_down,
            "partitions": self.stats.partitions,
        }

    # -- connections ----------------------------------------------------------------------

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            _drop(writer)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.settings
        if self._open >= s.max_connections or (not self.up and self.mode == "reset"):
            self.stats.refused += 1
            _drop(writer)
            return
        self._writers.add(writer)
        self._open += 1  # counted while it waits for the link too
        try:
            if self._up is not None:
                await self._up.wait()  # a blackholed connect waits for the link
            if self._closing or writer.is_closing():
                raise OSError("the link is stopping, or a reset closed the connection")
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(s.target_host, s.target_port, limit=_CHUNK_BYTES),
                s.connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            log.debug("link %s: upstream refused (%s)", self.port, exc)
            self._open -= 1
            self._writers.discard(writer)
            _drop(writer)
            return
        self._writers.add(up_writer)
        self.stats.connections += 1
        up = _Direction(asyncio.Queue(maxsize=self._queue_chunks))
        down = _Direction(asyncio.Queue(maxsize=self._queue_chunks))
        pumps = [
            self._read(reader, up, upstream=True),
            self._write(up_writer, up),
            self._read(up_reader, down, upstream=False),
            self._write(writer, down),
        ]
        tasks = [asyncio.get_running_loop().create_task(p) for p in pumps]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._open -= 1
            self._tasks.difference_update(tasks)
            for w in (writer, up_writer):
                self._writers.discard(w)
                _drop(w)

    async def _read(self, reader: asyncio.StreamReader, way: _Direction, *, upstream: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(_CHUNK_BYTES):
                now = loop.time()
                if upstream:
                    self.stats.bytes_up += len(data)
                    if way.queue.empty() and now >= way.last_delivery:  # a new burst
                        way.delay_s = self.rtt.sample_ms(self._rng) / 1000.0
                else:
                    self.stats.bytes_down += len(data)
                sent = self._serialize(len(data), now, upstream)
                way.last_delivery = max(way.last_delivery, sent + way.delay_s)
                await way.queue.put((way.last_delivery, data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            await way.queue.put(None)

    def _serialize(self, nbytes: int, now: float, upstream: bool) -> float:
        """When the last of ``nbytes`` leaves, paced at the link's bandwidth."""
        if self.bandwidth_mbps is None:
            return now
        start = max(now, self._busy_until[upstream])
        done = start + nbytes * 8 / (self.bandwidth_mbps * 1e6)
        self._busy_until[upstream] = done
        return done

    async def _write(self, writer: asyncio.StreamWriter, way: _Direction) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (item := await way.queue.get()) is not None:
                deliver_at, data = item
                wait_s = deliver_at - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                if self._up is not None and not self._up.is_set():
                    await self._up.wait()  # blackholed: held until the link heals
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            # the receiver is gone: drop what the sender still sends, so it never waits
            # on a full queue, until its side ends too
            _drop(writer)
            while await way.queue.get() is not None:
                pass


def _drop(writer: asyncio.StreamWriter) -> None:
    """Close a connection at once (no lingering bytes)."""
    writer.transport.abort()
    writer.close()
