"""The fleet simulator: a day of the fleet under a plan, before it is bought.

- :mod:`tierwise.sim.core`: the discrete-event core (:class:`Simulation`: a heap of
  ``(time, seq, event)``, seeded named random streams, no wall clock);
- :mod:`tierwise.sim.queues`: the servers' queues for a block of arrivals at once (FIFO,
  round-robin replicas, the tier server's dynamic batcher);
- :mod:`tierwise.sim.scenario`: partitions, heat, repricing, bursts, node failures;
- :mod:`tierwise.sim.inputs`: the plan, spec and profiles as the simulator runs them;
- :mod:`tierwise.sim.tiers`: what a scenario does to the tiers, and how a tier serves;
- :mod:`tierwise.sim.scaling`: cloud pools that follow their load, a scale-up late;
- :mod:`tierwise.sim.engine`: traffic routed by the live router's own
  :class:`~tierwise.router.policy.Policy` through the tiers, queues and links;
- :mod:`tierwise.sim.results`: per workload and hour, what a user reads;
- :mod:`tierwise.sim.load`: all of it from files (``tierwise simulate``).
"""

from tierwise.sim.core import Event, Simulation
from tierwise.sim.engine import SimRun, simulate
from tierwise.sim.inputs import SimFleet, SimSettings, SimTier, SimWorkload, sim_fleet
from tierwise.sim.load import Simulated, simulate_files
from tierwise.sim.queues import BatchRun, batching_server, fifo_departures, spread_departures
from tierwise.sim.results import summarize
from tierwise.sim.scenario import Scenario, ScenarioEvent, load_scenario

__all__ = [
    "BatchRun",
    "Event",
    "Scenario",
    "ScenarioEvent",
    "SimFleet",
    "SimRun",
    "SimSettings",
    "SimTier",
    "SimWorkload",
    "Simulated",
    "Simulation",
    "batching_server",
    "fifo_departures",
    "load_scenario",
    "sim_fleet",
    "simulate",
    "simulate_files",
    "spread_departures",
    "summarize",
]
