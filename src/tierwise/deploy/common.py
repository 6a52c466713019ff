"""Pieces every rendered manifest shares: names, labels, secret references, YAML out.

Kubernetes names are DNS-1123 labels; a plan's tier or site whose name is not one cannot
be expressed and is refused with a :class:`~tierwise.errors.PlanError` naming it, rather
than mangled into a name nobody chose. YAML is written with sorted keys and no aliases,
so the same plan gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from tierwise import __version__
from tierwise.deploy.settings import SECRET_KEYS, DeploySettings
from tierwise.errors import PlanError

__all__ = [
    "PART_OF",
    "dns_name",
    "dump_yaml",
    "labels_for",
    "metadata",
    "secret_env",
    "selector_for",
]

PART_OF = "tierwise"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Longest name left for a tier: room for suffixes such as ``-predictor`` and ``-canary``.
_MAX_NAME = 40


def dns_name(field: str, name: str) -> str:
    """``name`` when it can name Kubernetes objects (a DNS-1123 label of at most 40
    characters, leaving room for suffixes); PlanError naming ``field`` otherwise."""
    if len(name) > _MAX_NAME or not _DNS_LABEL.match(name):
        raise PlanError(
            field,
            f"a DNS-1123 label of at most {_MAX_NAME} characters (lowercase letters, digits "
            "and '-') to name Kubernetes objects after; rename it in the plan",
            repr(name),
        )
    return name


def labels_for(component: str, instance: str) -> dict[str, str]:
    """The recommended ``app.kubernetes.io`` labels of one workload."""
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/name": instance,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": __version__,
    }


def selector_for(instance: str) -> dict[str, str]:
    """The labels that select one workload's pods (stable across versions)."""
    return {"app.kubernetes.io/name": instance, "app.kubernetes.io/part-of": PART_OF}


def metadata(name: str, component: str, instance: str | None = None) -> dict[str, Any]:
    """``metadata`` of an object named ``name`` belonging to ``instance`` (default: it)."""
    return {"name": name, "labels": labels_for(component, instance or name)}


def secret_env(
    settings: DeploySettings, env: str, what: str, *, optional: bool = False
) -> dict[str, Any]:
    """An environment variable read from key ``what`` of the settings' ``Secret`` (one
    of :data:`~tierwise.deploy.settings.SECRET_KEYS`, else the variable's own name in
    lowercase with ``-`` for ``_``): a reference, never a value."""
    return {
        "name": env,
        "valueFrom": {
            "secretKeyRef": {
                "name": settings.secret_name,
                "key": SECRET_KEYS.get(what, what.lower().replace("_", "-")),
                "optional": optional,
            }
        },
    }


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(doc: Mapping[str, Any] | list[Any]) -> str:
    """One YAML document, keys sorted, no aliases, block style."""
    return yaml.dump(
        doc, Dumper=_NoAliases, sort_keys=True, default_flow_style=False, width=100,
        allow_unicode=True,
    )  # fmt: skip
