"""``control.yaml``: what the fleet control plane is told (pydantic, handed to it).

The control plane keeps nodes, desired versions, rollouts and the audit log in ``store``
(a SQLite file by default; ``postgresql://...`` for several replicas). Agents heartbeat
with a token of scope ``telemetry`` and read their desired versions with it; operators
start and steer rollouts with scope ``admin``. ``registry`` is where the bundles a rollout
names are resolved and their signatures checked before the first node moves.
``prometheus_url`` makes the gates read a real Prometheus instead of the agents' reports.
``telemetry`` also takes the heartbeats agents publish through NATS JetStream
(:mod:`tierwise.control.nats_intake`).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from tierwise.agent.settings import RegistryPart
from tierwise.outbox.nats_settings import NatsTelemetrySettings
from tierwise.security import AuthSettings, TlsServerSettings
from tierwise.settings_errors import SettingsModel

__all__ = ["ControlSettings", "RegistrySettings"]


#: The registry rollouts resolve their bundles in, and the keys they must be signed by:
#: the same settings as an agent's ``registry:``.
RegistrySettings = RegistryPart


class ControlSettings(SettingsModel):
    """One control plane process."""

    store: str = Field(
        min_length=1,
        description="a SQLite file (the embedded default) or postgresql://USER@HOST:PORT/DB",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=9100, ge=0, le=65535)
    registry: RegistrySettings
    auth: AuthSettings | None = None
    tls: TlsServerSettings | None = None
    insecure: bool = False
    prometheus_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/@]+(/\S*)?$",
        description="gates read this Prometheus instead of the agents' own reports (no "
        "credentials in the URL: they would show in errors)",
    )
    heartbeat_s: float = Field(
        default=10.0, gt=0, le=3600, description="how often agents are asked to heartbeat"
    )
    stale_after_s: float | None = Field(
        default=None,
        gt=0,
        description="a node silent this long is neither healthy nor failed (default: 3 "
        "heartbeat intervals)",
    )
    tick_s: float = Field(default=0.5, gt=0, le=60, description="how often rollouts are stepped")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_pending_heartbeats: int = Field(default=20_000, ge=1)
    max_nodes: int = Field(default=100_000, ge=1)
    history_samples: int = Field(default=16, ge=4, le=10_000)
    replica: str | None = Field(
        default=None, description="this replica's name in the leader lease (default: host:pid)"
    )
    lease_s: float = Field(default=10.0, gt=0)
    telemetry: NatsTelemetrySettings | None = Field(
        default=None,
        description="also take heartbeats agents publish through NATS: the hub's url, "
        "hub_domain and the leaves' source_domains",
    )

    @model_validator(mode="after")
    def _lease_outlives_tick(self) -> ControlSettings:
        if self.lease_s <= self.tick_s:
            raise ValueError(f"lease_s ({self.lease_s}) must exceed tick_s ({self.tick_s})")
        return self

    @property
    def stale_s(self) -> float:
        """Seconds of silence after which a node counts as unreachable."""
        return self.stale_after_s if self.stale_after_s is not None else 3 * self.heartbeat_s
