"""What one emulated link is told (``tierwise link``): where it listens, where it leads,
the round trip it adds, its bandwidth, what a partition does, and its bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierwise.link.delay import RttModel

__all__ = ["LinkSettings", "PartitionMode"]

#: ``blackhole``: held bytes wait (and new connections hang) until the link heals, as
#: TCP does through a short outage; ``reset``: every connection is closed and new ones
#: are refused at once.
PartitionMode = Literal["blackhole", "reset"]


class LinkSettings(BaseModel):
    """One emulated link (see :mod:`tierwise.link.relay`). ``rtt_*_ms`` is added to each
    request's round trip (charged on the way to ``target``); ``bandwidth_mbps`` paces each
    direction, shared by every connection (None: unpaced)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=0, ge=0, le=65535)
    target_host: str = "127.0.0.1"
    target_port: int = Field(ge=1, le=65535)
    rtt_p50_ms: float = Field(default=0.0, ge=0, le=60_000)
    rtt_p99_ms: float | None = Field(default=None, ge=0, le=60_000)
    bandwidth_mbps: float | None = Field(default=None, gt=0, le=100_000)
    partition_mode: PartitionMode = "blackhole"
    seed: int | None = Field(default=None, description="the delays' random stream")
    max_connections: int = Field(default=1024, ge=1, le=65_536)
    buffer_bytes: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024, description="bytes held per direction"
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, le=300)

    @model_validator(mode="after")
    def _rtt(self) -> LinkSettings:
        if self.rtt_p99_ms is not None and self.rtt_p99_ms < self.rtt_p50_ms:
            raise ValueError(
                f"rtt_p99_ms ({self.rtt_p99_ms}) must be at least rtt_p50_ms ({self.rtt_p50_ms})"
            )
        return self

    def rtt(self) -> RttModel:
        """The round-trip model (p99 defaults to p50: a constant delay)."""
        p99 = self.rtt_p50_ms if self.rtt_p99_ms is None else self.rtt_p99_ms
        return RttModel(self.rtt_p50_ms, p99)
