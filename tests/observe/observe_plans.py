"""A plan of an edge and a cloud tier with two workloads: ``digits`` with a p99 target,
``batch`` (deferrable) with none."""

from __future__ import annotations

from pathlib import Path

PLAN = """
version: 1
tiers:
  edge:
    kind: edge
    site: store-1
    region: us-east
    url: {edge}
    model: small
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.00001
    timeout_s: {timeout_s}
  cloud:
    kind: cloud
    region: us-east
    url: {cloud}
    model: large
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.0002
    timeout_s: {timeout_s}
workloads:
  digits:
    privacy: public
    slo_p99_ms: {slo_ms}
    cascade:
      - {{tier: edge, rule: max_prob, threshold: 0.9}}
      - {{tier: cloud}}
  batch:
    privacy: public
    urgency: deferrable
    cascade:
      - {{tier: cloud}}
"""


def write_plan(
    path: Path,
    edge: str = "http://127.0.0.1:9101",
    cloud: str = "http://127.0.0.1:9102",
    *,
    slo_ms: float = 120,
    timeout_s: float = 2.0,
) -> Path:
    path.write_text(PLAN.format(edge=edge, cloud=cloud, slo_ms=slo_ms, timeout_s=timeout_s))
    return path
