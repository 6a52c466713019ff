"""Telemetry: what the fleet reports about the requests it served.

- :mod:`~tierwise.telemetry.sampling` keeps a sample of routed requests (their route,
  confidence and, when asked, their inputs with secrets removed) in a JSONL file or SQLite;
- :mod:`~tierwise.telemetry.energy` accounts the energy models use: RAPL counters where
  readable, else a node's power model times busy time;
- :mod:`~tierwise.telemetry.drift` compares what a tier sees with its model's reference
  (:mod:`~tierwise.telemetry.drift_reference`): PSI and Kolmogorov-Smirnov over windows;
- :mod:`~tierwise.telemetry.device` validates and aggregates the reports devices send the
  gateway, and :mod:`~tierwise.telemetry.device_report` builds them on the device, filtered
  by the workload's privacy class;
- :mod:`~tierwise.telemetry.families` holds the plain counters and histograms the hot
  paths update and ``/metrics`` turns into Prometheus families.
"""

from __future__ import annotations

from tierwise.telemetry.device import (
    DEVICE_TELEMETRY_PATH,
    DeviceReport,
    DeviceTelemetry,
    DeviceTelemetrySettings,
    LatencyHistogram,
    WorkloadRules,
)
from tierwise.telemetry.device_report import DeviceReporter, DriftSource
from tierwise.telemetry.drift import (
    REFERENCE_FILE,
    DriftMonitor,
    DriftSettings,
    Reference,
    ks_pvalue,
    ks_statistic,
    psi,
    reference_from_outputs,
)
from tierwise.telemetry.energy import EnergyMeter, EnergySource, RaplReader
from tierwise.telemetry.sampling import (
    JsonlSink,
    Sampler,
    SampleSink,
    SqliteSink,
)

__all__ = [
    "DEVICE_TELEMETRY_PATH",
    "REFERENCE_FILE",
    "DeviceReport",
    "DeviceReporter",
    "DeviceTelemetry",
    "DeviceTelemetrySettings",
    "DriftMonitor",
    "DriftSettings",
    "DriftSource",
    "EnergyMeter",
    "EnergySource",
    "JsonlSink",
    "LatencyHistogram",
    "RaplReader",
    "Reference",
    "SampleSink",
    "Sampler",
    "SqliteSink",
    "WorkloadRules",
    "ks_pvalue",
    "ks_statistic",
    "psi",
    "reference_from_outputs",
]
