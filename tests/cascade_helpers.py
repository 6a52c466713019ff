"""A three-tier cascade of the zoo's family for router tests: one-model repositories and
a plan writer (the servers themselves are the ``tier_servers`` fixture)."""

from __future__ import annotations

import shutil
from pathlib import Path

THRESHOLD = 0.9


def model_repo(zoo: Path, root: Path, variant: str) -> Path:
    repo = root / f"repo-{variant}"
    (repo / variant / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy(zoo / variant / "1" / "model.onnx", repo / variant / "1" / "model.onnx")
    return repo


def write_plan(path: Path, zoo: Path, edge_url: str, cloud_url: str) -> Path:
    path.write_text(
        f"""
version: 1
tiers:
  device:
    kind: device
    site: store-1
    region: us-east
    local: {{model: {zoo / "tiny" / "1" / "model.onnx"}}}
    rtt_p50_ms: 0
    rtt_p99_ms: 0
    cost_usd_per_inference: 0
  edge:
    kind: edge
    site: store-1
    region: us-east
    url: {edge_url}
    model: small
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.00001
    timeout_s: 2
  cloud:
    kind: cloud
    region: us-east
    url: {cloud_url}
    model: large
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.0002
    timeout_s: 2
workloads:
  digits:
    privacy: public
    cascade:
      - {{tier: device, rule: max_prob, threshold: {THRESHOLD}}}
      - {{tier: edge, rule: max_prob, threshold: {THRESHOLD}}}
      - {{tier: cloud}}
  private-digits:
    privacy: sensitive
    cascade:
      - {{tier: device, rule: max_prob, threshold: {THRESHOLD}}}
      - {{tier: edge, rule: max_prob, threshold: {THRESHOLD}}}
      - {{tier: cloud}}
"""
    )
    return path
