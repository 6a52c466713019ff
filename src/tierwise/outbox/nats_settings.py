"""Settings of the NATS JetStream outbox (``outbox: {backend: nats, url: ..., ...}``).

One model serves both ends. An edge process publishes to ``stream`` in its leaf node's
JetStream ``domain``; the hub sources every leaf named in ``source_domains`` into
``hub_stream`` (in ``hub_domain``), where a durable pull consumer delivers the items.
Every bound the broker enforces is here: message size, stream limits, the duplicate
window that makes a publisher's retries harmless, and how many deliveries may wait for
an ack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tierwise.errors import ConfigError
from tierwise.settings_errors import settings_error

__all__ = ["NatsOutboxSettings", "nats_outbox_settings"]

# JetStream names (streams, consumers, domains): no whitespace, dots or wildcards
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SUBJECT = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("expected 1 to 64 letters, digits, '_' or '-'")
    return value


class NatsOutboxSettings(BaseModel):
    """Where and how outbox items travel through JetStream (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    backend: Literal["nats"] = "nats"
    url: str = Field(description="nats:// or tls:// URL of the local server (leaf or hub)")
    stream: str = Field(default="TIERWISE_OUTBOX", description="the edge's stream")
    domain: str | None = Field(default=None, description="JetStream domain of `stream`")
    subject_prefix: str = Field(default="tierwise.outbox", description="subject = prefix.tier")
    hub_stream: str = Field(default="TIERWISE_OUTBOX_HUB", description="the hub's stream")
    hub_domain: str | None = Field(default=None, description="JetStream domain of the hub")
    source_domains: tuple[str, ...] = Field(
        default=(), description="leaf domains whose `stream` the hub stream sources"
    )
    durable: str = Field(default="tierwise-outbox", description="the hub consumer's name")
    max_msg_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_msgs: int = Field(default=100_000, ge=1, description="stream limit (items kept)")
    max_bytes: int = Field(default=1024**3, ge=1024 * 1024, description="stream limit")
    max_age_s: float = Field(default=7 * 86400.0, gt=0, description="items older are dropped")
    duplicate_window_s: float = Field(default=120.0, gt=0, le=86400.0)
    max_ack_pending: int = Field(default=256, ge=1, le=100_000)
    ack_wait_s: float = Field(default=60.0, gt=0, description="redelivery after no ack")
    max_deliver: int = Field(default=10, ge=1, description="deliveries per item")
    backoff_base_s: float = Field(default=1.0, ge=0, description="first retry delay")
    backoff_max_s: float = Field(default=300.0, ge=0)
    fetch_batch: int = Field(default=16, ge=1, le=1024, description="items per fetch")
    fetch_timeout_s: float = Field(default=1.0, gt=0, description="wait of an idle fetch")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    publish_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError("expected a nats:// or tls:// URL with a host")
        return value

    @field_validator("stream", "hub_stream", "durable")
    @classmethod
    def _names(cls, value: str) -> str:
        return _name(value)

    @field_validator("domain", "hub_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)

    @field_validator("source_domains")
    @classmethod
    def _sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("expected distinct domains")
        return tuple(_name(v) for v in value)

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _SUBJECT.fullmatch(value):
            raise ValueError("expected dot-separated tokens without wildcards, e.g. a.b")
        return value

    def subject(self, tier: str) -> str:
        """The subject items for ``tier`` are published on."""
        if not _NAME.fullmatch(tier):
            raise ConfigError("tier", "1 to 64 letters, digits, '_' or '-'", tier)
        return f"{self.subject_prefix}.{tier}"


def nats_outbox_settings(data: Mapping[str, Any], *, source: str = "outbox") -> NatsOutboxSettings:
    """Validate an ``outbox:`` mapping; a ConfigError names ``source`` and each problem."""
    try:
        return NatsOutboxSettings.model_validate(dict(data))
    except ValidationError as exc:
        raise settings_error(source, exc, NatsOutboxSettings) from exc
