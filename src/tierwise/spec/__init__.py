"""The fleet spec: tiers, models and workloads as data, loaded from YAML.

Shape (every section is a mapping of name to entry; names use letters, digits, ``-``, ``_``)::

    version: 1
    regions:   {us-east: {provider: aws, provider_region: us-east-1}}
    sites:     {store: {region: us-east, site_count: 40}}
    tiers:     {shop-edge: {kind: edge, site: store, hardware: ..., capacity: ...,
                            network: ..., cost: ...}}
    models:    {detector: {variants: {int8: {uri: ..., size_mib: 12}}}}
    workloads: {shelf: {model: detector, tiers: [shop-edge, gpu], slo: ..., traffic: ...,
                        privacy: personal, residency: site}}

Problems are reported with the file and a field path such as
``tiers.shop-edge.cost.capex_usd`` or ``workloads.shelf.tiers[1]``. A variant's ``uri`` is a
path relative to the spec's folder or a URI (``zoo://NAME``, ``oci://...``);
:func:`check_files` (``tierwise validate``) also looks at the files plain paths name
(:mod:`tierwise.spec.artifacts`), :func:`load_spec` does not.

Privacy and residency
---------------------
A workload's data starts at its *origin*: ``origin_site`` / ``origin_region`` when given.
Otherwise the origin site is the site all its device tiers share or, when none of them is
at a site, the site all its edge tiers share (data from a store's cameras lands on that
store's edge box first); the origin region is the origin site's region, else the region
all its device tiers share, else (with no device tiers) the region all its edge tiers'
sites share.
A workload may use a listed tier only when both its privacy class and its residency allow:

- privacy ``sensitive``: device tiers only.
- privacy ``personal``: device tiers, and edge tiers at the origin site; never the cloud.
- privacy ``public``: any tier.
- residency ``device``: device tiers only.
- residency ``site``: device tiers, and edge tiers at the origin site.
- residency ``region``: device tiers, and edge or cloud tiers in the origin region.
- residency ``any``: any tier.

Device tiers always qualify: they are where the data starts. When the origin site or
region is unknown, the rules that need it allow no edge or cloud tier. A workload none of
whose tiers qualify is a spec problem; tiers that do not qualify are otherwise dropped by
:func:`allowed_tiers`, and :func:`excluded_tiers` says why. The rules work on plain
values (:mod:`tierwise.spec.placement`), so a plan's tiers follow the very same ones.
"""

from tierwise.spec.artifacts import looks_like_onnx
from tierwise.spec.base import (
    BYTES_PER_GB,
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    SECONDS_PER_DAY,
)
from tierwise.spec.fleet import FleetSpec, SpecHeader
from tierwise.spec.load import SpecCheck, check_files, load_spec, parse_spec, validate_files
from tierwise.spec.placement import PRIVACY_RANK, RESIDENCY_RANK, Origin, Place
from tierwise.spec.queries import (
    allowed_tiers,
    excluded_tiers,
    get_tier,
    get_workload,
    region_of,
    site_of,
    tiers_of_kind,
    variant_for,
    workload_model,
    workload_origin,
    workload_tiers,
    workloads_on_tier,
)
from tierwise.spec.rules import node_memory_mib, variant_misfit
from tierwise.spec.tiers import (
    KIND_RANK,
    AnyTier,
    Capacity,
    CloudCost,
    CloudMix,
    CloudTier,
    DeviceCost,
    DeviceTier,
    EdgeCost,
    EdgeTier,
    Hardware,
    Network,
    Region,
    Site,
    Tier,
    TierKind,
)
from tierwise.spec.workloads import (
    Budget,
    ModelSpec,
    Privacy,
    Quantization,
    Residency,
    Slo,
    Traffic,
    Urgency,
    Variant,
    Workload,
)

__all__ = [
    "AnyTier",
    "BYTES_PER_GB",
    "DAYS_PER_MONTH",
    "HOURS_PER_MONTH",
    "KIND_RANK",
    "PRIVACY_RANK",
    "RESIDENCY_RANK",
    "SECONDS_PER_DAY",
    "Budget",
    "Capacity",
    "CloudCost",
    "CloudMix",
    "CloudTier",
    "DeviceCost",
    "DeviceTier",
    "EdgeCost",
    "EdgeTier",
    "FleetSpec",
    "Hardware",
    "ModelSpec",
    "Network",
    "Origin",
    "Place",
    "Privacy",
    "Quantization",
    "Region",
    "Residency",
    "Site",
    "Slo",
    "SpecCheck",
    "SpecHeader",
    "Tier",
    "TierKind",
    "Traffic",
    "Urgency",
    "Variant",
    "Workload",
    "allowed_tiers",
    "check_files",
    "excluded_tiers",
    "get_tier",
    "get_workload",
    "load_spec",
    "looks_like_onnx",
    "node_memory_mib",
    "parse_spec",
    "region_of",
    "site_of",
    "tiers_of_kind",
    "validate_files",
    "variant_for",
    "variant_misfit",
    "workload_model",
    "workload_origin",
    "workload_tiers",
    "workloads_on_tier",
]
