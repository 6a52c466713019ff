"""What one control plane replica does besides answering requests: take or renew the
store's rollout lease, and while holding it step the rollouts; keep, for the agents'
heartbeat answers, which nodes a running rollout analyses (they are asked to heartbeat
more often); and, on a store other replicas share, take their writes in.

The stepping runs in a worker thread, one step at a time; :meth:`Replica.stop` lets the
step in flight finish before the lease is released, so two replicas never step at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from tierwise.control.desired import DesiredBook
from tierwise.control.engine import RolloutEngine
from tierwise.control.store import ControlStore
from tierwise.control.window import Counters, History
from tierwise.errors import ConfigError

__all__ = ["Replica"]

log = logging.getLogger("tierwise.control")

#: The shortest heartbeat interval asked of a node a rollout analyses.
MIN_HEARTBEAT_S = 0.2


class Replica:
    """The lease and the stepping loop of one control plane process."""

    def __init__(
        self,
        store: ControlStore,
        engine: RolloutEngine,
        history: History,
        desired: DesiredBook,
        *,
        name: str,
        tick_s: float,
        lease_s: float,
    ) -> None:
        self.store = store
        self.engine = engine
        self.history = history
        self.desired = desired
        self.name = name
        self.tick_s = tick_s
        self.lease_s = lease_s
        self.leader = False
        #: node -> heartbeat interval asked of it while a running rollout analyses it
        self.watched: dict[str, float] = {}
        self._stopping: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="rollouts")

    async def stop(self) -> None:
        if self._task is None or self._stopping is None:
            return
        self._stopping.set()
        await self._task  # the step in flight ends first
        self._task = None
        if self.leader:
            await asyncio.to_thread(self.store.release_lease, self.name)
            self.leader = False

    async def _loop(self) -> None:
        assert self._stopping is not None  # start() set it; internal invariant
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.step)
            except Exception:  # the loop outlives any one failure
                log.exception("stepping rollouts failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.tick_s)

    def step(self) -> None:
        """One step: take or renew the lease, and step the rollouts when holding it."""
        now = time.time()
        leader = self.store.acquire_lease(self.name, self.lease_s, now)
        if leader != self.leader:
            log.info("replica %s %s the rollout lease", self.name,
                     "holds" if leader else "no longer holds")  # fmt: skip
            self.leader = leader
        active = self.engine.active()
        watched: dict[str, float] = {}
        for rollout in active:
            if rollout.state != "running":
                continue
            interval = max(rollout.interval_s / 4, MIN_HEARTBEAT_S)
            for node in (*rollout.baseline, *rollout.cohort):
                watched[node] = min(watched.get(node, interval), interval)
        self.watched = watched
        if self.store.kind != "sqlite":  # other replicas take heartbeats and write too
            self.desired.replace(self.store.all_desired())
            if leader and active:
                self._catch_up({r.bundle for r in active})
        if leader:
            self.engine.tick(lease=(self.name, now))

    def _catch_up(self, bundles: set[str]) -> None:
        """Feed the history with the heartbeats other replicas stored (a sample this
        replica took itself is not added twice)."""
        for record in self.store.list_nodes():
            counters = record.status.get("counters")
            if not isinstance(counters, dict):
                continue
            for bundle in bundles & counters.keys():
                try:
                    value = Counters.from_doc(counters[bundle], f"counters.{bundle}")
                except ConfigError:
                    continue
                self.history.add(record.node, bundle, record.last_seen_s, value)
