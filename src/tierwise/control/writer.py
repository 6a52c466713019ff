"""Group commit of heartbeats: a heartbeat is answered once it is in the store, and the
heartbeats that arrive while one batch is being written go together in the next, so a
thousand nodes a second cost a few transactions a second, not a thousand.

The queue is bounded: past ``max_pending`` heartbeats waiting, a heartbeat is refused
with 503 and ``Retry-After`` (the node sends its next one later; nothing it had is lost).
"""

from __future__ import annotations

import asyncio
import logging

from tierwise.control.store import ControlStore, Heartbeat
from tierwise.errors import ServerBusyError

__all__ = ["HeartbeatWriter"]

log = logging.getLogger("tierwise.control")


class HeartbeatWriter:
    """Writes heartbeats to ``store`` in batches of at most ``max_batch``."""

    def __init__(self, store: ControlStore, *, max_pending: int, max_batch: int = 1000) -> None:
        self.store = store
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.written = 0
        self.batches = 0
        self._pending: list[tuple[Heartbeat, asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="control-writer")

    async def stop(self) -> None:
        """Write what waits (none is lost at shutdown), then end the writer."""
        if self._task is None or self._wake is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._task = None

    @property
    def depth(self) -> int:
        return len(self._pending)

    async def submit(self, beat: Heartbeat) -> None:
        """Returns once ``beat`` is committed; ServerBusyError when too many wait."""
        if self._wake is None:
            raise ServerBusyError(
                model="heartbeats", queue_size=0, reason="the control plane is not started"
            )
        if len(self._pending) >= self.max_pending:
            raise ServerBusyError(
                model="heartbeats",
                queue_size=len(self._pending),
                reason=f"{len(self._pending)} heartbeats are waiting to be written",
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((beat, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        assert self._wake is not None  # start() set it; internal invariant
        while not self._stopping or self._pending:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                beats = [b for b, _ in batch]
                futures = [f for _, f in batch]
                try:
                    await asyncio.to_thread(self.store.record_heartbeats, beats)
                except Exception as exc:  # every waiting heartbeat hears of it
                    log.exception("writing %d heartbeats failed", len(beats))
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self._done(beats, futures)

    def _done(self, beats: list[Heartbeat], futures: list[asyncio.Future[None]]) -> None:
        self.written += len(beats)
        self.batches += 1
        for future in futures:
            if not future.done():
                future.set_result(None)
