"""The fleet control plane: nodes, desired versions, staged rollouts and their gates.

- :mod:`~tierwise.control.store`: the storage interface (nodes, desired versions,
  rollouts, audit log, leader lease), on SQLite (:mod:`~tierwise.control.store_sqlite`,
  the embedded default) or PostgreSQL (:mod:`~tierwise.control.store_postgres`, for
  several replicas), opened by :func:`open_control_store`;
- :mod:`~tierwise.control.selector`: Kubernetes-style label selectors;
- :mod:`~tierwise.control.window`: the agents' cumulative counters, their history and
  the statistics of a cohort over an analysis window;
- :mod:`~tierwise.control.gates`: the gates (p99 ratio, error-rate delta, agreement
  delta, energy ratio, fallback delta) and one analysis;
- :mod:`~tierwise.control.sources`, :mod:`~tierwise.control.prom_source`: where the
  gates read their numbers (agent heartbeats, or a real Prometheus);
- :mod:`~tierwise.control.spec`, :mod:`~tierwise.control.rollout`,
  :mod:`~tierwise.control.engine`: a rollout request, its stored state, and the engine
  that steps it and rolls it back;
- :mod:`~tierwise.control.app`, :mod:`~tierwise.control.service`: the HTTP API and the
  process (``tierwise control``); :mod:`~tierwise.control.client`: its client.
"""

from __future__ import annotations

from tierwise.control.app import ControlApp
from tierwise.control.client import ControlClient
from tierwise.control.cohort import CohortStats, cohort_stats
from tierwise.control.engine import RolloutEngine
from tierwise.control.gates import GATES, Analysis, Gate, GateResult, analyse, gates_from
from tierwise.control.rollout import Rollout
from tierwise.control.selector import Selector, check_labels, parse_selector
from tierwise.control.service import build_control_app, run_control
from tierwise.control.settings import ControlSettings, RegistrySettings
from tierwise.control.spec import RolloutRequest, parse_duration, parse_stages
from tierwise.control.store import AuditEntry, Change, ControlStore, Heartbeat, NodeRecord
from tierwise.control.store_open import open_control_store
from tierwise.control.window import Counters, History

__all__ = [
    "GATES",
    "Analysis",
    "AuditEntry",
    "Change",
    "CohortStats",
    "ControlApp",
    "ControlClient",
    "ControlSettings",
    "ControlStore",
    "Counters",
    "Gate",
    "GateResult",
    "Heartbeat",
    "History",
    "NodeRecord",
    "RegistrySettings",
    "Rollout",
    "RolloutEngine",
    "RolloutRequest",
    "Selector",
    "analyse",
    "build_control_app",
    "check_labels",
    "cohort_stats",
    "gates_from",
    "open_control_store",
    "parse_duration",
    "parse_selector",
    "parse_stages",
    "run_control",
]
