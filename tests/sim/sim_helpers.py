"""A small fleet for the simulator's tests, written as a user would bring it: a fleet
spec, a hand-written plan and hand-made profiles of a model the zoo did not make.

Tiers: ``cam`` (50 camera devices), ``box`` (one edge box per shop, two shops) and
``gpu`` (a cloud pool of 1 to 4 instances). Workloads: ``scan`` (interactive, public,
cam > box > gpu, reach 1 / 0.4 / 0.1), ``nightly`` (deferrable, to the gpu only, held
for the off-peak hours) and ``faces`` (personal data that stays in the shop: cam > box).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

__all__ = ["FLEET", "PLAN", "write_fleet"]

FLEET: dict[str, Any] = {
    "version": 1,
    "name": "shops",
    "regions": {"r1": {}},
    "sites": {"shop": {"region": "r1", "site_count": 2}},
    "tiers": {
        "cam": {"kind": "device", "site": "shop", "capacity": {"node_count": 50},
                "hardware": {"cpu_cores": 4, "memory_gib": 1, "tags": ["cpu"]},
                "network": {"next_tier": "box", "rtt_p50_ms": 5, "rtt_p99_ms": 20,
                            "bandwidth_mbps": 50},
                "cost": {"update_usd_per_month": 0.01, "power_watts": 1.0}},
        "box": {"kind": "edge", "site": "shop", "capacity": {"node_count": 1},
                "hardware": {"cpu_cores": 4, "memory_gib": 8, "tags": ["cpu"]},
                "network": {"next_tier": "gpu", "rtt_p50_ms": 25, "rtt_p99_ms": 70,
                            "bandwidth_mbps": 20},
                "cost": {"capex_usd": 150, "amortization_months": 36, "power_watts": 7,
                         "maintenance_usd_per_month": 2, "energy_usd_per_kwh": 0.13,
                         "connectivity_usd_per_month": 5}},
        "gpu": {"kind": "cloud", "region": "r1",
                "capacity": {"node_count": 1, "max_node_count": 4},
                "hardware": {"cpu_cores": 8, "memory_gib": 32, "tags": ["cpu"]},
                "cost": {"on_demand_usd_per_hour": 1.0, "egress_usd_per_gb": 0.09}},
    },
    "models": {"m": {"variants": {
        "tiny": {"uri": "tiny.onnx", "size_mib": 1},
        "mid": {"uri": "mid.onnx", "size_mib": 10},
        "big": {"uri": "big.onnx", "size_mib": 100},
    }}},
    "workloads": {
        "scan": {"model": "m", "tiers": ["cam", "box", "gpu"], "slo": {"p99_ms": 200},
                 "traffic": {"requests_per_s": 200}, "privacy": "public"},
        "nightly": {"model": "m", "tiers": ["gpu"], "traffic": {"requests_per_s": 5},
                    "slo": {"p99_ms": 60000},
                    "privacy": "public", "urgency": "deferrable"},
        "faces": {"model": "m", "tiers": ["cam", "box"], "slo": {"p99_ms": 300},
                  "traffic": {"requests_per_s": 20}, "privacy": "personal",
                  "residency": "site"},
    },
}  # fmt: skip

PLAN: dict[str, Any] = {
    "version": 1,
    "spec": "fleet.yaml",
    "tiers": {
        "cam": {"kind": "device", "spec_tier": "cam", "variant": "tiny",
                "local": {"model": "tiny.onnx"}, "rtt_p50_ms": 0, "rtt_p99_ms": 0,
                "cost_usd_per_inference": 1e-8},
        "box": {"kind": "edge", "spec_tier": "box", "variant": "mid", "site": "shop",
                "url": "http://box.shop:9001", "model": "mid", "rtt_p50_ms": 5,
                "rtt_p99_ms": 20, "cost_usd_per_inference": 1e-6},
        "gpu": {"kind": "cloud", "spec_tier": "gpu", "variant": "big", "region": "r1",
                "url": "http://gpu.cloud:9002", "model": "big", "rtt_p50_ms": 30,
                "rtt_p99_ms": 90, "cost_usd_per_inference": 2e-5},
    },
    "workloads": {
        "scan": {"privacy": "public", "deadline_ms": 200,
                 "cascade": [{"tier": "cam", "rule": "max_prob", "threshold": 0.8},
                             {"tier": "box", "rule": "max_prob", "threshold": 0.7},
                             {"tier": "gpu"}],
                 "expected": {"reach": [1.0, 0.4, 0.1], "accuracy": 0.95}},
        "nightly": {"privacy": "public", "urgency": "deferrable",
                    "cascade": [{"tier": "gpu"}], "expected": {"reach": [1.0], "accuracy": 0.97}},
        "faces": {"privacy": "personal", "residency": "site", "deadline_ms": 300,
                  "cascade": [{"tier": "cam", "rule": "max_prob", "threshold": 0.8},
                              {"tier": "box"}],
                  "expected": {"reach": [1.0, 0.3], "accuracy": 0.9}},
    },
    "price_schedule": {"off_peak_hours_utc": [2, 3]},
}  # fmt: skip


def _batch(size: int, p50_ms: float, p99_ms: float) -> dict[str, Any]:
    mean = (p50_ms + p99_ms) / 2
    return {"batch_size": size, "runs": 100, "mean_ms": mean, "p50_ms": p50_ms,
            "p95_ms": (p50_ms + p99_ms) / 2, "p99_ms": p99_ms,
            "throughput_per_s": size * 1000 / mean}  # fmt: skip


def _profiles() -> dict[str, Any]:
    variants = {"tiny": (1.0, 2.0, 3.0, 5.0), "mid": (2.0, 4.0, 6.0, 10.0),
                "big": (5.0, 10.0, 15.0, 25.0)}  # fmt: skip
    return {
        "schema": "tierwise.profiles/2",
        "created_at": "2026-12-01T00:00:00Z",
        "host": {"label": "host", "cpu_cores": 4},
        "tiers": [],
        "settings": {"runs": 100, "warmup_runs": 10, "max_seconds_per_batch": 1.0},
        "profiles": [
            {"model": "m", "variant": v, "provider": "CPUExecutionProvider",
             "source": "onnxruntime", "batches": [_batch(1, a, b), _batch(8, c, d)]}
            for v, (a, b, c, d) in variants.items()
        ],
    }  # fmt: skip


def write_fleet(
    folder: Path, plan: dict[str, Any] | None = None, *, fleet: dict[str, Any] | None = None
) -> Path:
    """Write fleet.yaml, plan.yaml and profiles.json into ``folder``; the plan's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fleet.yaml").write_text(yaml.safe_dump(fleet or FLEET, sort_keys=False))
    (folder / "profiles.json").write_bytes(orjson.dumps(_profiles()))
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan or PLAN, sort_keys=False))
    return path
