"""The outbox on NATS JetStream: the scale backend beside the SQLite :class:`Outbox`.

An edge node runs a NATS leaf node with its own JetStream domain. :class:`NatsOutbox`
publishes each item to the leaf's stream, so a put succeeds while the link to the cloud is
down; the hub's stream sources every leaf's stream (``source_domains``) and catches up when
the link heals. Items travel on ``PREFIX.DOMAIN.TIER.ID``: each domain's stream takes only
its own domain's subjects (core NATS carries a subject across leaf links, and a stream on
``PREFIX.>`` everywhere would store every node's items on every node). Each message carries
``Nats-Msg-Id`` = the item's id, so a publisher that retries (or restarts and publishes
again) within the duplicate window stores the item once. An item with an idempotency key
gets an id derived from it, so a retry after a crash finds the same id. The hub consumes
with :class:`~tierwise.outbox.nats_drain.NatsDrainer` (explicit acks); redeliveries carry
the item's key and the tier server acts once (:mod:`tierwise.outbox.idempotency`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsClientError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, ExternalStream, StorageType, StreamConfig, StreamSource
from nats.js.errors import APIError, BadRequestError, NotFoundError

from tierwise.errors import ConfigError, OutboxError, OutboxFullError, PayloadTooLargeError
from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.outbox.types import ItemStatus, OutboxItem

__all__ = [
    "HEADER_CALLBACK",
    "HEADER_CREATED",
    "HEADER_KEY",
    "HEADER_META",
    "HEADER_NOT_BEFORE",
    "MSG_ID",
    "NatsOutbox",
    "connect",
    "ensure_stream",
    "item_from_headers",
    "item_id_for",
]

MSG_ID = "Nats-Msg-Id"
HEADER_KEY = "Tierwise-Idempotency-Key"
HEADER_META = "Tierwise-Meta"
HEADER_CREATED = "Tierwise-Created-S"
HEADER_NOT_BEFORE = "Tierwise-Not-Before-S"
HEADER_CALLBACK = "Tierwise-Callback-Url"
_HEADER_ROOM_BYTES = 1024  # framing of the headers besides the meta


def item_id_for(tier: str, idempotency_key: str | None, origin: str = "local") -> str:
    """The id of a new item: derived from ``(origin, tier, key)`` when it has a key (a
    retried put gets the same id and JetStream drops the copy; another domain's same key
    another id), random otherwise."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    digest = hashlib.sha256(f"{origin}\0{tier}\0{idempotency_key}".encode()).hexdigest()
    return digest[:32]


async def connect(settings: NatsOutboxSettings, *, name: str) -> Client:
    """A client of ``settings.url`` that keeps reconnecting; OutboxError when unreachable."""
    # once connected it reconnects for ever; the first connection is bounded in time
    try:
        return await asyncio.wait_for(
            nats.connect(
                settings.url,
                name=name,
                connect_timeout=settings.connect_timeout_s,
                max_reconnect_attempts=-1,
                allow_reconnect=True,
            ),
            settings.connect_timeout_s,
        )
    except (OSError, NatsClientError, TimeoutError) as exc:
        raise OutboxError(f"cannot connect: {exc}", path=settings.display_url) from exc


def _stream_config(settings: NatsOutboxSettings, name: str, **extra: Any) -> StreamConfig:
    return StreamConfig(
        name=name,
        storage=StorageType.FILE,
        # a full outbox refuses new items rather than drop old ones (telemetry drops old)
        discard=DiscardPolicy.NEW if settings.discard == "new" else DiscardPolicy.OLD,
        max_msgs=settings.max_msgs,
        max_bytes=settings.max_bytes,
        max_age=settings.max_age_s,
        max_msg_size=settings.max_msg_bytes,
        duplicate_window=settings.duplicate_window_s,
        **extra,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig, *, where: str) -> None:
    """Create the stream, or bring an existing one to ``config``."""
    try:
        await js.stream_info(str(config.name))
    except NotFoundError:
        try:
            await js.add_stream(config)
        except APIError as exc:
            raise OutboxError(f"cannot create stream {config.name}: {exc}", path=where) from exc
        return
    except (APIError, NatsClientError, TimeoutError) as exc:
        raise OutboxError(f"cannot read stream {config.name}: {exc}", path=where) from exc
    try:
        await js.update_stream(config)
    except APIError as exc:
        raise OutboxError(f"cannot update stream {config.name}: {exc}", path=where) from exc


def edge_stream_config(settings: NatsOutboxSettings) -> StreamConfig:
    """A leaf's stream: its own domain's subjects under the prefix."""
    return _stream_config(
        settings, settings.stream, subjects=[f"{settings.subject_prefix}.{settings.origin}.>"]
    )


def hub_stream_config(settings: NatsOutboxSettings) -> StreamConfig:
    """The hub's stream: the hub domain's own subjects (its publishers'), and each leaf
    domain's ``stream`` as a source."""
    hub_origin = settings.hub_domain or "local"
    sources = [
        StreamSource(name=settings.stream, external=ExternalStream(api=f"$JS.{domain}.API"))
        for domain in settings.source_domains
    ]
    return _stream_config(
        settings,
        settings.hub_stream,
        subjects=[f"{settings.subject_prefix}.{hub_origin}.>"],
        sources=sources or None,
    )


def item_from_headers(
    headers: Mapping[str, str],
    data: bytes,
    tier: str,
    fallback_id: str,
    *,
    status: ItemStatus = "pending",
    attempts: int = 0,
) -> OutboxItem:
    """The outbox item a stored message carries (its headers as :meth:`NatsOutbox.put`
    wrote them; damaged ones read as defaults rather than failing)."""
    try:
        meta = json.loads(headers.get(HEADER_META, "{}"))
    except ValueError:
        meta = {}

    def number(name: str, default: float) -> float:
        try:
            value = float(headers.get(name, default))
        except ValueError:
            return default
        return value if math.isfinite(value) else default

    created_s = number(HEADER_CREATED, 0.0)
    return OutboxItem(
        id=headers.get(MSG_ID) or fallback_id,
        tier=tier,
        payload=data,
        meta=meta if isinstance(meta, dict) else {},
        status=status,
        attempts=attempts,
        not_before_s=number(HEADER_NOT_BEFORE, created_s),
        created_s=created_s,
        updated_s=created_s,
        idempotency_key=headers.get(HEADER_KEY),
        callback_url=headers.get(HEADER_CALLBACK),
    )


class NatsOutbox:
    """The publishing end of the JetStream outbox (see the module docstring).

    Build it with :meth:`open`. ``put`` returns once the leaf's JetStream stored the item
    (its publish ack), so an item whose put returned survives a crash of this process.
    """

    def __init__(
        self,
        settings: NatsOutboxSettings,
        client: Client,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(settings, NatsOutboxSettings):
            raise ConfigError("settings", "a NatsOutboxSettings", type(settings).__name__)
        self.settings = settings
        self.path = settings.display_url
        #: the stream this end publishes into
        self.stream = settings.hub_stream if settings.at_hub else settings.stream
        self._client = client
        self._js = client.jetstream(domain=settings.domain, timeout=settings.publish_timeout_s)
        self._clock = clock

    @classmethod
    async def open(
        cls, settings: NatsOutboxSettings, *, clock: Callable[[], float] = time.time
    ) -> NatsOutbox:
        """Connect to ``settings.url`` and create or update this end's stream (the hub's
        when it publishes at the hub, see :attr:`NatsOutboxSettings.at_hub`)."""
        client = await connect(settings, name="tierwise-outbox")
        box = cls(settings, client, clock=clock)
        config = hub_stream_config(settings) if settings.at_hub else edge_stream_config(settings)
        try:
            await ensure_stream(box._js, config, where=settings.display_url)
        except BaseException:
            await client.close()
            raise
        return box

    @property
    def client(self) -> Client:
        """The connection (to read the hub's results bucket through it)."""
        return self._client

    async def close(self) -> None:
        """Flush and close the connection (idempotent)."""
        if not self._client.is_closed:
            await self._client.drain()

    async def __aenter__(self) -> NatsOutbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def put(
        self,
        tier: str,
        payload: bytes,
        *,
        idempotency_key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        not_before_s: float | None = None,
        callback_url: str | None = None,
    ) -> str:
        """Publish ``payload`` for ``tier``; returns the item id once stored.

        A key already published within the duplicate window returns the same id and
        stores nothing new. The deliverer holds the item until ``not_before_s`` (a wall
        clock time) and posts its result to ``callback_url``. Raises
        :class:`OutboxFullError` when the stream is at its limits and
        :class:`OutboxError` when the broker does not answer.
        """
        self.settings.subject(tier)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ConfigError("payload", "bytes", type(payload).__name__)
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str)
            or not 0 < len(idempotency_key) <= 512
            or not idempotency_key.isprintable()
        ):
            raise ConfigError(
                "idempotency_key", "a printable string of 1 to 512 characters", idempotency_key
            )
        try:
            meta_json = json.dumps(dict(meta or {}), sort_keys=True, ensure_ascii=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError("meta", "a JSON-serializable mapping", str(exc)) from exc
        body = bytes(payload)
        limit = self.settings.max_msg_bytes
        if len(body) + len(meta_json) + _HEADER_ROOM_BYTES > limit:
            raise PayloadTooLargeError(len(body) + len(meta_json), limit - _HEADER_ROOM_BYTES)
        if callback_url is not None and (
            not isinstance(callback_url, str)
            or not callback_url.startswith(("http://", "https://"))
            or len(callback_url) > 2048
        ):
            raise ConfigError("callback_url", "an http(s) URL of at most 2048 characters",
                              callback_url)  # fmt: skip
        item_id = item_id_for(tier, idempotency_key, self.settings.origin)
        headers = {MSG_ID: item_id, HEADER_META: meta_json, HEADER_CREATED: repr(self._clock())}
        if idempotency_key is not None:
            headers[HEADER_KEY] = idempotency_key
        if not_before_s is not None:
            headers[HEADER_NOT_BEFORE] = repr(float(not_before_s))
        if callback_url is not None:
            headers[HEADER_CALLBACK] = callback_url
        try:
            await self._js.publish(
                self.settings.item_subject(tier, item_id),
                body,
                headers=headers,
                timeout=self.settings.publish_timeout_s,
            )
        except BadRequestError as exc:
            raise OutboxError(f"refused: {exc}", path=self.path) from exc
        except APIError as exc:
            if "maximum" in str(exc).lower() or "resource" in str(exc).lower():
                raise OutboxFullError(
                    path=self.path,
                    tier=tier,
                    max_items=self.settings.max_msgs,
                    pending=self.settings.max_msgs,
                ) from exc
            raise OutboxError(f"publish failed: {exc}", path=self.path) from exc
        except (NatsClientError, TimeoutError, OSError) as exc:
            raise OutboxError(f"publish failed: {exc}", path=self.path) from exc
        return item_id

    async def find(self, tier: str, item_id: str) -> OutboxItem | None:
        """Item ``item_id`` as this end's stream holds it, ``pending`` (None when the
        stream holds none: never queued, or aged out)."""
        try:
            subject = self.settings.item_subject(tier, item_id)
        except ConfigError:
            return None  # not an id this outbox makes
        try:
            raw = await self._js.get_last_msg(self.stream, subject)
        except NotFoundError:
            return None
        except (APIError, NatsClientError, TimeoutError) as exc:
            raise OutboxError(f"cannot read stream: {exc}", path=self.path) from exc
        return item_from_headers(raw.headers or {}, raw.data or b"", tier, item_id)

    async def pending_count(self) -> int:
        """Items held in the edge stream (delivered or not: the hub acks on its side)."""
        try:
            info = await self._js.stream_info(self.stream)
        except (APIError, NatsClientError, TimeoutError) as exc:
            raise OutboxError(f"cannot read stream: {exc}", path=self.path) from exc
        return int(info.state.messages)
