"""Measurement: latency of models and tiers, the input to profiles and plans."""

from tierwise.bench.latency import LatencyStats, measure_latency
from tierwise.bench.synthetic import dense_stack_model

__all__ = ["LatencyStats", "dense_stack_model", "measure_latency"]
