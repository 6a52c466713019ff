"""The ``agent.yaml`` of an edge node that serves one of a plan's edge tiers.

The same document runs a node under Kubernetes (:mod:`tierwise.deploy.edge`) and under
systemd (:mod:`tierwise.deploy.systemd`): the node serves the tier's model from the
bundle of that name (its ``variant`` when the plan records one), answers for the tier in
the plan's cascades through its gateway, keeps its state in ``state_dir`` and reads its
tokens from environment variables (:data:`ENV`), never from the file. The document is
checked against :class:`~tierwise.agent.settings.AgentSettings` before it is returned, so
a node that could not start from it is refused here. The node listens on the port of the
tier's ``url`` in the plan (see :func:`edge_ports`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from tierwise.agent.settings import AgentSettings
from tierwise.deploy.settings import (
    ALL_INTERFACES,
    DEFAULT_THERMAL_ZONE,
    GATEWAY_PORT,
    DeploySettings,
)
from tierwise.errors import PlanError
from tierwise.planfile.schema import Plan, TierConfig
from tierwise.settings_errors import settings_error

__all__ = [
    "CONFIG_DIR",
    "ENV",
    "KEYS_FILE",
    "PLAN_FILE",
    "agent_document",
    "edge_ports",
    "edge_tier",
]

#: Where the node's read-only files are: ``plan.yaml``, ``agent.yaml``, ``keys/``.
CONFIG_DIR = "/etc/tierwise"
PLAN_FILE = f"{CONFIG_DIR}/plan.yaml"
#: The public key bundles are checked against (not a secret; mounted from a ConfigMap).
KEYS_FILE = f"{CONFIG_DIR}/keys/bundle.pub"
#: Environment variables the node reads its secrets from, by what they hold.
ENV = {
    "control_token": "TIERWISE_CONTROL_TOKEN",
    "registry_password": "TIERWISE_REGISTRY_PASSWORD",
}
_BUNDLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def edge_tier(plan: Plan, name: str) -> TierConfig:
    """The plan's edge tier ``name`` that a node can serve (a remote tier: its model has
    a name); PlanError naming the tier otherwise."""
    tier = plan.tiers.get(name)
    if tier is None:
        edges = sorted(n for n, t in plan.tiers.items() if t.kind == "edge")
        raise PlanError("tier", f"one of the plan's edge tiers {edges}", repr(name))
    if tier.kind != "edge":
        raise PlanError(f"tiers.{name}.kind", "edge (only edge tiers run on edge nodes)", tier.kind)
    if tier.model is None:
        raise PlanError(
            f"tiers.{name}", "a remote tier (url and model) that an edge node serves", "local"
        )
    return tier


def edge_ports(plan: Plan) -> dict[str, tuple[int, int]]:
    """The ports of each edge tier's node: its server's, the port of the tier's ``url``
    (what the plan's routers call), and its gateway's (8080 and up, one per edge tier of
    the same site). PlanError for a port a non-root agent cannot bind, or for two edge
    tiers of one site on one port (their nodes may be the same boxes)."""
    out: dict[str, tuple[int, int]] = {}
    taken: dict[tuple[str | None, int], str] = {}
    per_site: dict[str | None, int] = {}
    for name in sorted(n for n, t in plan.tiers.items() if t.kind == "edge"):
        tier = edge_tier(plan, name)
        port = urlsplit(tier.url or "").port
        if port is None or port < 1024:
            raise PlanError(
                f"tiers.{name}.url",
                "an explicit port of 1024 or above (the agent runs as a non-root user)",
                tier.url,
            )
        other = taken.get((tier.site, port))
        if other is not None:
            raise PlanError(
                f"tiers.{name}.url",
                f"a port other than {port}, which edge tier {other!r} of site "
                f"{tier.site!r} listens on",
                tier.url,
            )
        taken[(tier.site, port)] = name
        index = per_site.get(tier.site, 0)
        per_site[tier.site] = index + 1
        out[name] = (port, GATEWAY_PORT + index)
    for name, (_, gateway) in out.items():
        site = plan.tiers[name].site
        if (site, gateway) in taken:
            raise PlanError(
                f"tiers.{taken[(site, gateway)]}.url",
                f"a port other than {gateway}, the gateway port of edge tier {name!r}",
                plan.tiers[taken[(site, gateway)]].url,
            )
    return out


def agent_document(
    plan: Plan, tier_name: str, node: str, settings: DeploySettings
) -> dict[str, Any]:
    """The ``agent.yaml`` mapping of node ``node`` serving edge tier ``tier_name``."""
    tier = edge_tier(plan, tier_name)
    port, gateway_port = edge_ports(plan)[tier_name]
    model = tier.model or tier_name
    bundle = model.lower()
    if not _BUNDLE.match(bundle):
        raise PlanError(
            f"tiers.{tier_name}.model",
            "a model name that is also a bundle name (lowercase letters, digits, '.', '_', "
            "'-'; at most 63)",
            repr(model),
        )
    labels = {"tier": tier_name}
    if tier.site is not None:
        labels["site"] = tier.site
    doc: dict[str, Any] = {
        "node": node,
        "labels": labels,
        "state_dir": settings.state_dir,
        "host": ALL_INTERFACES,
        "port": port,
        "bundle": bundle,
        "serve": [{"variant": tier.variant or model, "model": model}],
        "registry": {
            "store": settings.registry,
            "password_env": ENV["registry_password"],
            "trusted_keys": [KEYS_FILE],
        },
        "desired_file": f"{settings.state_dir}/desired.yaml",
        "gateway": {"plan": PLAN_FILE, "local_tier": tier_name, "port": gateway_port},
        "control_token_env": ENV["control_token"],
    }
    if settings.thermal_zone != DEFAULT_THERMAL_ZONE:
        # else the agent's own default: thermal_zone0 when the box has one
        doc["thermal"] = {"source": f"{settings.thermal_zone}/temp"}
    try:
        AgentSettings.model_validate(doc)
    except ValidationError as exc:
        raise settings_error(f"agent.yaml of tier {tier_name}", exc, AgentSettings) from exc
    return doc
