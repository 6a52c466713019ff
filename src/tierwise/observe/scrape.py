"""Prometheus' scrape configuration for a plan's fleet: ``prometheus.yml`` and the file
service discovery targets (``targets.json``) it reads.

Every remote tier of the plan is a target (its URL's host and port, scheme and path
prefix) labelled ``tier=<the plan's tier name>`` and ``job="tierwise-tier"``; gateways
and agents given on the command line are targets of jobs ``tierwise-gateway`` and
``tierwise-agent`` without a ``tier`` label (a router's series name the answering tier
themselves). A tier server's own ``tier`` label, if it differs, is kept by Prometheus as
``exported_tier``: the plan's name wins. Tiers with ``tls`` settings get a scrape job of
their own carrying them (CA, client certificate, server name); the others share one.
Target paths in ``prometheus.yml`` are relative to the folder it is written to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tierwise.errors import ConfigError
from tierwise.observe.promql import prom_duration
from tierwise.observe.settings import ObserveSettings
from tierwise.planfile.schema import Plan
from tierwise.security.tls import TlsClientSettings

__all__ = [
    "AGENT_JOB",
    "GATEWAY_JOB",
    "RULES_FILE",
    "TARGETS_FILE",
    "TIER_JOB",
    "Target",
    "plan_targets",
    "prometheus_config",
    "targets_file",
]

TIER_JOB = "tierwise-tier"
GATEWAY_JOB = "tierwise-gateway"
AGENT_JOB = "tierwise-agent"
RULES_FILE = "alerts.yml"
TARGETS_FILE = "targets.json"
#: the hidden target label that ties a target to its scrape job (dropped after relabelling)
_GROUP_LABEL = "__tierwise_group"
_PLAIN = "plain"


@dataclass(frozen=True)
class Target:
    """One scrape target: ``host:port``, scheme, metrics path, job, the plan's tier name
    (None for gateways and agents) and the tier's TLS settings."""

    address: str
    scheme: str
    metrics_path: str
    job: str
    tier: str | None = None
    tls: TlsClientSettings | None = None

    @property
    def group(self) -> str:
        return _PLAIN if self.tls is None else f"tls-{self.tier}"


def _target(url: str, what: str, job: str, tier: str | None = None,
            tls: TlsClientSettings | None = None) -> Target:  # fmt: skip
    parts = urlsplit(url)
    expected = "an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(what, expected, url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigError(what, expected, url) from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    path = parts.path.rstrip("/") + "/metrics"
    return Target(f"{host}:{port}", parts.scheme, path, job, tier, tls)


def plan_targets(
    plan: Plan | None, gateways: Sequence[str] = (), agents: Sequence[str] = ()
) -> list[Target]:
    """The plan's remote tiers (none without a plan), then ``gateways`` and ``agents``
    (URLs); ConfigError names a URL that is not http(s) with a host."""
    tiers = plan.tiers.items() if plan is not None else ()
    out = [
        _target(tier.url, f"tiers.{name}.url", TIER_JOB, name, tier.tls)
        for name, tier in tiers
        if tier.url is not None
    ]
    out += [_target(url, "--gateway", GATEWAY_JOB) for url in gateways]
    out += [_target(url, "--agent", AGENT_JOB) for url in agents]
    return out


def targets_file(targets: Sequence[Target]) -> list[dict[str, Any]]:
    """File service discovery's JSON: one group per target."""
    groups = []
    for t in targets:
        labels = {"job": t.job, "__scheme__": t.scheme, "__metrics_path__": t.metrics_path,
                  _GROUP_LABEL: t.group}  # fmt: skip
        if t.tier is not None:
            labels["tier"] = t.tier
        groups.append({"targets": [t.address], "labels": labels})
    return groups


def _tls_config(tls: TlsClientSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tls.ca is not None:
        out["ca_file"] = str(tls.ca)
    if tls.cert is not None and tls.key is not None:
        out["cert_file"], out["key_file"] = str(tls.cert), str(tls.key)
    if tls.server_name is not None:
        out["server_name"] = tls.server_name
    if tls.insecure_skip_verify:
        out["insecure_skip_verify"] = True
    return out


def prometheus_config(
    targets: Sequence[Target], settings: ObserveSettings | None = None
) -> dict[str, Any]:
    """``prometheus.yml``: intervals from ``settings``, the rules file and one scrape job
    per TLS setting reading :data:`TARGETS_FILE`."""
    settings = settings or ObserveSettings()
    groups: dict[str, TlsClientSettings | None] = {_PLAIN: None}
    for t in targets:
        groups.setdefault(t.group, t.tls)
    jobs = []
    for group, tls in groups.items():
        job: dict[str, Any] = {
            "job_name": "tierwise" if group == _PLAIN else f"tierwise-{group}",
            "file_sd_configs": [{"files": [TARGETS_FILE], "refresh_interval": "30s"}],
            "relabel_configs": [
                {"source_labels": [_GROUP_LABEL], "regex": group, "action": "keep"}
            ],
        }
        if tls is not None:
            job["tls_config"] = _tls_config(tls)
        jobs.append(job)
    return {
        "global": {
            "scrape_interval": prom_duration(settings.scrape_interval_s),
            "scrape_timeout": prom_duration(settings.scrape_timeout_s),
            "evaluation_interval": prom_duration(settings.evaluation_interval_s),
        },
        "rule_files": [RULES_FILE],
        "scrape_configs": jobs,
    }
