"""The demo's fleet: a parcel hub reading handwritten digits with the zoo's family.

Cameras over the belts run a device model, a box on the dock runs an edge model, and a
GPU pool in the cloud runs the large one. Two workloads share them: ``parcel-codes``
(public; 5,000 reads a second, 93% of them right) and ``customs-forms`` (names on them:
personal data that may reach the hub's own box but never the cloud).

The zoo's models are tiny; the spec's ``speed_factor`` says how the tiers compare with
the machine the demo profiles them on. The GPU pool's 0.01 stands for a cloud model a
hundred times heavier per read than the zoo's ``large``, which is what makes escalating
only the unsure reads worth a cascade. Prices are 2024 list prices.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FLEET_YAML", "MAIN_WORKLOAD", "write_fleet"]

#: The workload the demo also replays through the cloud alone, to compare.
MAIN_WORKLOAD = "parcel-codes"

FLEET_YAML = """\
# written by tierwise demo (tierwise.demo.fleet): a parcel hub reading handwritten digits
version: 1
name: parcel-hub
description: Cameras over the belts, a box on the dock and a GPU pool read parcel digits.

regions:
  us-east: {provider: aws, provider_region: us-east-1, jurisdiction: US}

sites:
  hub: {description: The sorting hub, region: us-east}

tiers:
  belt-camera:
    kind: device
    description: Camera heads over the belts (quad-core Cortex-A55 class).
    site: hub
    hardware: {cpu_cores: 4, cpu_model: Cortex-A55, memory_gib: 2, tags: [cpu, arm64],
               speed_factor: 0.25}
    capacity: {node_count: 60}
    network: {next_tier: dock-edge, rtt_p50_ms: 2, rtt_p99_ms: 10, bandwidth_mbps: 100}
    cost: {capex_usd: 120, amortization_months: 36, power_watts: 2,
           energy_usd_per_kwh: 0.13, update_usd_per_month: 0.001,
           telemetry_usd_per_month: 0.002, operator_pays_energy: true}

  dock-edge:
    kind: edge
    description: Two Raspberry Pi 5 8GB boxes on the dock.
    site: hub
    hardware: {cpu_cores: 4, cpu_model: Cortex-A76, memory_gib: 8, tags: [cpu, arm64],
               speed_factor: 0.5}
    capacity: {node_count: 2, max_replicas_per_node: 2}
    network: {next_tier: gpu-pool, rtt_p50_ms: 20, rtt_p99_ms: 80, bandwidth_mbps: 200}
    cost: {capex_usd: 150, amortization_months: 36, maintenance_usd_per_month: 2.0,
           power_watts: 7, energy_usd_per_kwh: 0.13, connectivity_usd_per_month: 5.0}

  gpu-pool:
    kind: cloud
    description: g4dn.xlarge instances (1x T4) in us-east-1, autoscaled.
    region: us-east
    instance_type: g4dn.xlarge
    hardware: {cpu_cores: 4, memory_gib: 16, accelerator: nvidia-t4,
               accelerator_memory_gib: 16, tags: [cpu, x86_64, cuda], speed_factor: 0.01}
    capacity: {node_count: 1, max_node_count: 40, max_replicas_per_node: 1}
    cost:
      on_demand_usd_per_hour: 0.526
      spot_usd_per_hour: 0.21
      reserved_usd_per_hour: 0.331
      mix: {reserved: 0.5, spot: 0.3, on_demand: 0.2}
      egress_usd_per_gb: 0.09

models:
  digits:
    task: digit-classification
    variants:
      tiny: {uri: "zoo://tiny", size_mib: 0.01}
      tiny-int8: {uri: "zoo://tiny-int8", quantization: int8, size_mib: 0.01}
      small: {uri: "zoo://small", size_mib: 0.03}
      small-int8: {uri: "zoo://small-int8", quantization: int8, size_mib: 0.02}
      large: {uri: "zoo://large", size_mib: 0.2, hardware_tags: [x86_64]}
      large-int8: {uri: "zoo://large-int8", quantization: int8, size_mib: 0.06,
                   hardware_tags: [x86_64]}

workloads:
  parcel-codes:
    description: Postcodes and parcel numbers; any tier may see them.
    model: digits
    tiers: [belt-camera, dock-edge, gpu-pool]
    slo: {p50_ms: 40, p95_ms: 150, p99_ms: 300}
    traffic: {requests_per_s: 5000}
    privacy: public
    min_accuracy: 0.93
    request_bytes: 300
    response_bytes: 200

  customs-forms:
    description: Handwritten customs forms with names on them; they stay in the hub.
    model: digits
    tiers: [belt-camera, dock-edge, gpu-pool]
    slo: {p99_ms: 300}
    traffic: {requests_per_s: 20}
    privacy: personal
    residency: site
    min_accuracy: 0.92
    request_bytes: 300
    response_bytes: 200
"""


def write_fleet(path: Path) -> Path:
    """Write the demo's fleet spec to ``path`` (left untouched when already the same)."""
    if not (path.is_file() and path.read_text(encoding="utf-8") == FLEET_YAML):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FLEET_YAML, encoding="utf-8")
    return path
