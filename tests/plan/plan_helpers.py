"""A small fleet and hand-made profiles whose figures are easy to check by hand.

Fleet: one site ``s1`` in region ``r1``; tiers ``dev`` (10 devices at s1, half the
profiling host's speed, 5/10 ms to the edge), ``edge`` (one box at s1, $10/month all in,
20/50 ms to the cloud) and ``cloud`` (up to 2 instances at $1/hour on demand); model ``m``
with variants ``a`` (fast, 90% right) and ``b`` (slow, 95% right); workload ``w`` lists all
three tiers with a 100 ms p99 SLO and 100 requests/s.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import yaml

from tierwise.bench.profiles import BatchLatency, Host, ProfileSet, ProfileSettings, VariantProfile
from tierwise.plan import CascadeCurve, CurvePoint
from tierwise.spec import FleetSpec, parse_spec

FLEET: dict[str, Any] = {
    "version": 1,
    "name": "small",
    "regions": {"r1": {}, "r2": {}},
    "sites": {"s1": {"region": "r1"}},
    "tiers": {
        "dev": {
            "kind": "device",
            "site": "s1",
            "hardware": {"cpu_cores": 4, "memory_gib": 1.0, "tags": ["cpu"], "speed_factor": 0.5},
            "capacity": {"node_count": 10},
            "network": {
                "next_tier": "edge", "rtt_p50_ms": 5.0, "rtt_p99_ms": 10.0, "bandwidth_mbps": 10.0
            },
            "cost": {"update_usd_per_month": 0.1},
        },
        "edge": {
            "kind": "edge",
            "site": "s1",
            "hardware": {"cpu_cores": 4, "memory_gib": 8.0, "tags": ["cpu"]},
            "capacity": {"node_count": 1},
            "network": {
                "next_tier": "cloud", "rtt_p50_ms": 20.0, "rtt_p99_ms": 50.0,
                "bandwidth_mbps": 10.0,
            },
            "cost": {
                "capex_usd": 360.0, "amortization_months": 36.0, "maintenance_usd_per_month": 0.0,
                "power_watts": 0.0, "energy_usd_per_kwh": 0.0, "connectivity_usd_per_month": 0.0,
            },
        },
        "cloud": {
            "kind": "cloud",
            "region": "r1",
            "hardware": {"cpu_cores": 4, "memory_gib": 16.0, "tags": ["cpu"]},
            "capacity": {"node_count": 1, "max_node_count": 2},
            "cost": {
                "on_demand_usd_per_hour": 1.0, "spot_usd_per_hour": 0.4,
                "reserved_usd_per_hour": 0.6, "egress_usd_per_gb": 0.0,
            },
        },
    },
    "models": {
        "m": {
            "variants": {
                "a": {"uri": "a.onnx", "size_mib": 10.0},
                "b": {"uri": "b.onnx", "size_mib": 100.0},
            }
        }
    },
    "workloads": {
        "w": {
            "model": "m",
            "tiers": ["dev", "edge", "cloud"],
            "slo": {"p99_ms": 100.0},
            "traffic": {"requests_per_s": 100.0},
            "privacy": "public",
        }
    },
}  # fmt: skip


def fleet_data() -> dict[str, Any]:
    return copy.deepcopy(FLEET)


def fleet(data: dict[str, Any] | None = None) -> FleetSpec:
    return parse_spec(
        yaml.safe_dump(fleet_data() if data is None else data, sort_keys=False), "fleet.yaml"
    )


def batch(size: int, p99_ms: float, throughput_per_s: float) -> BatchLatency:
    return BatchLatency(
        batch_size=size, runs=100, mean_ms=p99_ms / 2, p50_ms=p99_ms / 4, p95_ms=p99_ms / 2,
        p99_ms=p99_ms, throughput_per_s=throughput_per_s,
    )  # fmt: skip


def variant(
    name: str,
    batches: list[BatchLatency],
    *,
    accuracy: float | None = None,
    peak_memory_mib: float | None = None,
    provider: str = "CPUExecutionProvider",
    includes_network: bool = False,
) -> VariantProfile:
    return VariantProfile(
        variant=name, provider=provider, batches=batches, accuracy=accuracy,
        peak_memory_mib=peak_memory_mib, includes_network=includes_network,
        source="endpoint" if includes_network else "onnxruntime",
    )  # fmt: skip


def profile_set(profiles: list[VariantProfile], tiers: list[str] | None = None) -> ProfileSet:
    return ProfileSet(
        created_at="2024-01-01T00:00:00Z",
        host=Host(label="host", cpu_cores=4),
        tiers=tiers or [],
        settings=ProfileSettings(runs=100, warmup_runs=10, max_seconds_per_batch=1.0),
        profiles=profiles,
    )


def host_profiles() -> ProfileSet:
    """``a``: p99 4 ms at batch 1 (500/s), 10 ms at batch 8 (2,000/s), 90% right;
    ``b``: p99 20 ms at batch 1 (100/s), 40 ms at batch 8 (400/s), 95% right."""
    return profile_set(
        [
            variant("a", [batch(1, 4.0, 500.0), batch(8, 10.0, 2000.0)], accuracy=0.90),
            variant("b", [batch(1, 20.0, 100.0), batch(8, 40.0, 400.0)], accuracy=0.95),
        ]
    )


def curve_ab(*points: tuple[float, float, bool]) -> CascadeCurve:
    """A calibrated cascade ``a > b``: points of (escalation rate, accuracy, chosen)."""
    return CascadeCurve(
        ("a", "b"),
        tuple(
            CurvePoint("max_prob", (0.5 + i / 100,), accuracy, (rate,), chosen)
            for i, (rate, accuracy, chosen) in enumerate(points)
        ),
        "test",
    )


def random_fleet(rng: random.Random, workloads: int) -> dict[str, Any]:
    """A variant of the small fleet where capacity, fixed costs and instance prices all
    matter, with ``workloads`` seeded workloads."""
    data = fleet_data()
    tiers = data["tiers"]
    tiers["dev"]["capacity"]["node_count"] = rng.randint(1, 3)
    tiers["dev"]["hardware"]["memory_gib"] = rng.choice([0.05, 1.0])  # b needs 100 MiB
    tiers["dev"]["cost"]["update_usd_per_month"] = rng.choice([0.5, 3.0, 8.0])
    tiers["edge"]["cost"]["capex_usd"] = rng.choice([36.0, 360.0, 720.0])
    tiers["edge"]["capacity"]["max_replicas_per_node"] = rng.randint(1, 2)
    tiers["cloud"]["cost"]["on_demand_usd_per_hour"] = rng.choice([0.005, 0.02, 0.05])
    tiers["cloud"]["cost"]["egress_usd_per_gb"] = 0.09
    tiers["cloud"]["capacity"]["max_node_count"] = rng.randint(1, 3)
    entries = {}
    for i in range(workloads):
        entry: dict[str, Any] = {
            "model": "m",
            "tiers": ["dev", "edge", "cloud"],
            "slo": {"p99_ms": rng.choice([30.0, 100.0, 300.0])},
            "traffic": {"requests_per_s": rng.choice([20.0, 100.0, 300.0, 700.0])},
            "privacy": rng.choice(["public", "public", "personal"]),
            "response_bytes": rng.choice([0, 100_000]),
        }
        if entry["privacy"] == "personal":
            entry["residency"] = "site"
        if rng.random() < 0.6:
            entry["min_accuracy"] = 0.93
        entries[f"w{i}"] = entry
    data["workloads"] = entries
    return data
