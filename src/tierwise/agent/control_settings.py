"""An agent's ``control:`` settings: where the node reads its desired state at every sync
(:mod:`tierwise.agent.control`) and where its heartbeats go (:mod:`tierwise.agent.heartbeat`):
POSTed to ``heartbeat_url``, or published through the node's NATS leaf node with
``telemetry: {backend: nats, ...}`` (:mod:`tierwise.agent.heartbeat_nats`), which keeps
them through a partition and lets the control plane's consumer take them at the hub."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierwise.outbox.nats_settings import NatsTelemetrySettings
from tierwise.security import TlsClientSettings

__all__ = ["ControlSettings"]

_URL = r"^https?://[^\s/]+(/\S*)?$"


class ControlSettings(BaseModel):
    """Where the node reads its desired state and sends its heartbeats (see the module
    docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        pattern=_URL,
        description="http(s) URL answering {ref: VERSION | TAG | sha256:...}; {node} in it "
        "becomes the node's name",
    )
    heartbeat_url: str | None = Field(
        default=None,
        pattern=_URL,
        description="http(s) URL the node POSTs its heartbeat to (labels, status, counters) "
        "every heartbeat_s, with url's token and TLS; {node} becomes the node's name",
    )
    telemetry: NatsTelemetrySettings | None = Field(
        default=None,
        description="publish the heartbeats through the node's NATS leaf node instead "
        "({backend: nats, url: nats://127.0.0.1:4222, domain: LEAF_DOMAIN})",
    )
    heartbeat_s: float = Field(default=10.0, gt=0, le=3600)
    token_env: str | None = Field(
        default=None,
        description="name of the environment variable holding a bearer token to send "
        "(HTTPS or loopback only)",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    tls: TlsClientSettings | None = Field(
        default=None,
        description="how an https control plane is checked (ca) and how the node proves "
        "itself to it (cert, key); default: the system's trust store",
    )

    @model_validator(mode="after")
    def _one_heartbeat_path(self) -> ControlSettings:
        if self.heartbeat_url is not None and self.telemetry is not None:
            raise ValueError("expected heartbeat_url or telemetry (NATS), not both")
        return self
