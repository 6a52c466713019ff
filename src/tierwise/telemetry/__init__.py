"""Telemetry: what the fleet reports about the requests it served.

:mod:`~tierwise.telemetry.sampling` keeps a sample of routed requests (their route,
confidence and, when asked, their inputs with secrets removed) in a JSONL file or SQLite."""

from __future__ import annotations

from tierwise.telemetry.sampling import (
    JsonlSink,
    Sampler,
    SampleSink,
    SqliteSink,
)

__all__ = [
    "JsonlSink",
    "SampleSink",
    "Sampler",
    "SqliteSink",
]
