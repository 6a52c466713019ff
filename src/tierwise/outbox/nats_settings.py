"""Settings of the NATS JetStream outbox (``outbox: {backend: nats, url: ..., ...}``).

One model serves both ends. An edge process publishes to ``stream`` in its leaf node's
JetStream ``domain``; the hub sources every leaf named in ``source_domains`` into
``hub_stream`` (in ``hub_domain``), where a durable pull consumer delivers the items.
Every bound the broker enforces is here: message size, stream limits, the duplicate
window that makes a publisher's retries harmless, and how many deliveries may wait for
an ack.

In a gateway's settings (``outbox: {backend: nats, ...}``) the gateway publishes the work
it defers; with ``consume: true`` it also delivers the hub stream's items through its own
router (the cloud gateway does; an edge gateway publishing through its leaf does not).
The deliverer keeps each item's outcome in the hub's key-value bucket
``results_bucket`` for ``max_age_s``, where ``GET /v2/outbox/{id}`` finds it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tierwise.errors import ConfigError
from tierwise.settings_errors import settings_error

__all__ = ["NatsOutboxSettings", "NatsTelemetrySettings", "nats_outbox_settings"]

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
    consume: bool = Field(default=False, description="deliver the hub stream's items here")
    results_bucket: str = Field(
        default="TIERWISE_OUTBOX_RESULTS", description="the hub's key-value bucket of outcomes"
    )
    results_max_bytes: int = Field(
        default=256 * 1024**2, ge=1024 * 1024, description="bucket limit (oldest go first)"
    )
    max_msg_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_msgs: int = Field(default=100_000, ge=1, description="stream limit (items kept)")
    max_bytes: int = Field(default=1024**3, ge=1024 * 1024, description="stream limit")
    max_age_s: float = Field(default=7 * 86400.0, gt=0, description="items older are dropped")
    discard: Literal["new", "old"] = Field(
        default="new", description="a full stream refuses new items, or drops the oldest"
    )
    duplicate_window_s: float = Field(default=120.0, gt=0, le=86400.0)
    max_ack_pending: int = Field(default=256, ge=1, le=100_000)
    ack_wait_s: float = Field(default=60.0, gt=0, description="redelivery after no ack")
    max_deliver: int = Field(
        default=10, ge=2, description="deliveries per item (a hold until later uses one)"
    )
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

    @field_validator("stream", "hub_stream", "durable", "results_bucket")
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

    @model_validator(mode="after")
    def _consumer_at_the_hub(self) -> NatsOutboxSettings:
        if self.consume and self.domain != self.hub_domain:
            raise ValueError(
                "consume: true delivers the hub stream's items where the hub is: set "
                f"domain to hub_domain ({self.hub_domain!r}), not {self.domain!r}"
            )
        return self

    @property
    def display_url(self) -> str:
        """``url`` without any user or password in it (what errors and logs show)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def at_hub(self) -> bool:
        """True when this end publishes in the hub's own domain (straight into
        ``hub_stream``; a leaf publishes into its ``stream``)."""
        return self.domain == self.hub_domain

    @property
    def origin(self) -> str:
        """The subject token of this end's domain (``local`` without one)."""
        return self.domain or "local"

    def subject(self, tier: str) -> str:
        """The subject under which this end publishes ``tier``'s items (each item on its
        own subject below it, so it can be looked up by id). Each domain publishes under
        its own token, so one domain's stream never captures another's items."""
        if not _NAME.fullmatch(tier):
            raise ConfigError("tier", "1 to 64 letters, digits, '_' or '-'", tier)
        return f"{self.subject_prefix}.{self.origin}.{tier}"

    def item_subject(self, tier: str, item_id: str) -> str:
        """The subject of one item of ``tier``."""
        if not _NAME.fullmatch(item_id):
            raise ConfigError("item_id", "1 to 64 letters, digits, '_' or '-'", item_id)
        return f"{self.subject(tier)}.{item_id}"

    def tier_filter(self, tier: str) -> str:
        """The subjects of ``tier``'s items in the hub stream (the hub consumer's filter):
        from every domain when it sources leaves, else the hub domain's own."""
        self.subject(tier)
        origin = "*" if self.source_domains else self.hub_domain or "local"
        return f"{self.subject_prefix}.{origin}.{tier}.>"


class NatsTelemetrySettings(NatsOutboxSettings):
    """Agents' heartbeats through JetStream (an agent's ``control.telemetry``, the control
    plane's ``telemetry``): the same model on streams of their own. A full stream drops
    the oldest heartbeats (counters are cumulative: the newest says the most)."""

    stream: str = Field(default="TIERWISE_TELEMETRY", description="the edge's stream")
    subject_prefix: str = Field(default="tierwise.telemetry", description="subject prefix")
    hub_stream: str = Field(default="TIERWISE_TELEMETRY_HUB", description="the hub's stream")
    durable: str = Field(default="tierwise-control", description="the hub consumer's name")
    max_msg_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_msgs: int = Field(default=10_000, ge=1, description="stream limit (heartbeats kept)")
    max_bytes: int = Field(default=256 * 1024**2, ge=1024 * 1024, description="stream limit")
    max_age_s: float = Field(default=86400.0, gt=0, description="heartbeats older are dropped")
    discard: Literal["new", "old"] = "old"
    max_deliver: int = Field(default=3, ge=2, description="deliveries per heartbeat")


def nats_outbox_settings(data: Mapping[str, Any], *, source: str = "outbox") -> NatsOutboxSettings:
    """Validate an ``outbox:`` mapping; a ConfigError names ``source`` and each problem."""
    try:
        return NatsOutboxSettings.model_validate(dict(data))
    except ValidationError as exc:
        raise settings_error(source, exc, NatsOutboxSettings) from exc
