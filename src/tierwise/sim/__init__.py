"""The fleet simulator's parts: the discrete-event core (:class:`Simulation`,
:mod:`tierwise.sim.core`) and the servers' queues computed a block of arrivals at a time
(:mod:`tierwise.sim.queues`)."""

from tierwise.sim.core import Event, Simulation
from tierwise.sim.queues import BatchRun, batching_server, fifo_departures, spread_departures

__all__ = [
    "BatchRun",
    "Event",
    "Simulation",
    "batching_server",
    "fifo_departures",
    "spread_departures",
]
