"""What a simulation records: every request's fate (:class:`SimRun`) and the requests of
one routing block on their way to the tiers (:class:`Block`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tierwise.router.types import Route, TierState

__all__ = ["NO_TRAFFIC", "Block", "SimRun", "Traffic", "join"]

#: Requests given to :func:`~tierwise.sim.engine.simulate`: arrival times (s) and
#: held-out rows (-1: none).
Traffic = tuple[np.ndarray, np.ndarray]
NO_TRAFFIC: Traffic = (np.zeros(0), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class SimRun:
    """Every simulated request (arrays of one row per request, in arrival order per
    block; empty when the run kept none), the run's bounds and its figures."""

    workloads: tuple[str, ...]
    tiers: tuple[str, ...]
    horizon_s: float
    workload: np.ndarray  # int: index into ``workloads``
    arrival_s: np.ndarray
    release_s: np.ndarray  # when it left the outbox (= arrival when not deferred)
    done_s: np.ndarray  # NaN: failed or still deferred at the end
    answered_by: np.ndarray  # int: index into ``tiers``; -1: no answer
    degraded: np.ndarray
    deferred: np.ndarray
    fallbacks: np.ndarray  # int: failed calls before the answer
    cost_usd: np.ndarray
    energy_j: np.ndarray
    correct: np.ndarray
    policy_calls: int
    #: (block index, workload): the block's route, and the tiers' state the policy saw, as
    #: the first group's routers saw them (tierwise.sim.sites; when a workload's every
    #: site is cut, that route took no request)
    routes: dict[tuple[int, str], Route]
    states: dict[int, dict[str, TierState]] = field(default_factory=dict)
    blocks_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the blocks' starts
    tally: Any = None  # the run's figures (a tierwise.sim.results.Tally)
    #: int: each request's group (whose routers and partitions; tierwise.sim.sites)
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: per autoscaled tier: (time s, servers up from then on) (tierwise.sim.scaling)
    servers_up: dict[str, list[tuple[float, int]]] = field(default_factory=dict)


@dataclass
class Block:
    """The requests of one workload in one block, before the queues."""

    workload: int
    arrival: np.ndarray
    release: np.ndarray
    route: tuple[int, ...]  # the tiers every request of the block is routed to, in order
    exit: np.ndarray  # route position that answers when nothing fails
    degraded: np.ndarray
    deferred: np.ndarray
    cost: np.ndarray
    energy: np.ndarray
    correct: np.ndarray
    price: np.ndarray  # per tier: the factor prices are multiplied by in this block
    #: which held-out row each request is (-1: none)
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: per tier index: which requests' calls to it the router's breaker keeps out
    kept_out: dict[int, np.ndarray] = field(default_factory=dict)
    #: the requests' group: whose routers and partitions (tierwise.sim.sites)
    group: int = 0


def join(
    parts: list[SimRun], names: tuple[str, ...], tiers: tuple[str, ...], horizon: float
) -> SimRun:
    def cat(attr: str, dtype: type) -> np.ndarray:
        arrays = [getattr(p, attr) for p in parts]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)

    return SimRun(
        workloads=names, tiers=tiers, horizon_s=horizon, workload=cat("workload", np.int64),
        arrival_s=cat("arrival_s", float), release_s=cat("release_s", float),
        done_s=cat("done_s", float), answered_by=cat("answered_by", np.int64),
        degraded=cat("degraded", bool), deferred=cat("deferred", bool),
        fallbacks=cat("fallbacks", np.int64), cost_usd=cat("cost_usd", float),
        energy_j=cat("energy_j", float), correct=cat("correct", bool), policy_calls=0,
        routes={}, group=cat("group", np.int64),
    )  # fmt: skip
