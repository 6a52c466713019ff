"""Outcomes of the JetStream outbox's items, in the hub's key-value bucket.

The deliverer (:class:`~tierwise.outbox.nats_drain.NatsDrainer`) writes one entry per
settled item, keyed by the item's id, before it acks the item: ``done`` with the tier's
answer, or ``failed`` with the error. Entries expire with the streams (``max_age_s``).
Any process that reaches the hub's domain (the hub itself, or an edge through its leaf
node while the link is up) reads them, which is how ``GET /v2/outbox/{id}`` answers for
a NATS-backed gateway.

An entry is one JSON line (status, attempts, the item's meta, error, times, the callback's
outcome) and then the answer's bytes as they are.
"""

from __future__ import annotations

import json
import time

from nats.errors import Error as NatsClientError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.outbox.types import ItemStatus, OutboxError, OutboxItem

__all__ = ["NatsResults", "decode_outcome", "encode_outcome"]

_STATUSES: frozenset[str] = frozenset({"done", "failed"})
#: nats-server's default max_payload: a larger entry is refused whatever the bucket allows
_SERVER_PAYLOAD = 1024 * 1024 - 4096


def encode_outcome(
    item: OutboxItem,
    status: ItemStatus,
    *,
    result: bytes | None = None,
    error: str | None = None,
    callback_status: str | None = None,
    finished_s: float | None = None,
) -> bytes:
    """The bucket entry of ``item`` settled as ``status``."""
    head = {
        "status": status,
        "tier": item.tier,
        "attempts": item.attempts,
        "meta": item.meta,
        "created_s": item.created_s,
        "finished_s": time.time() if finished_s is None else finished_s,
        "error": error,
        "callback_url": item.callback_url,
        "callback_status": callback_status,
    }
    return json.dumps(head, sort_keys=True).encode() + b"\n" + (result or b"")


def decode_outcome(item_id: str, raw: bytes) -> OutboxItem | None:
    """The settled item an entry describes (None for an entry this module did not write)."""
    line, _, result = raw.partition(b"\n")
    try:
        head = json.loads(line)
    except ValueError:
        return None
    if not isinstance(head, dict) or head.get("status") not in _STATUSES:
        return None
    meta = head.get("meta")
    finished = head.get("finished_s")
    created = head.get("created_s")
    callback = head.get("callback_status")
    return OutboxItem(
        id=item_id,
        tier=str(head.get("tier", "")),
        payload=b"",
        meta=meta if isinstance(meta, dict) else {},
        status=head["status"],
        attempts=int(head.get("attempts") or 0),
        not_before_s=0.0,
        created_s=float(created) if isinstance(created, int | float) else 0.0,
        updated_s=float(finished) if isinstance(finished, int | float) else 0.0,
        callback_url=head.get("callback_url"),
        last_error=head.get("error"),
        result=result if head["status"] == "done" else None,
        finished_s=float(finished) if isinstance(finished, int | float) else None,
        callback_status=callback if callback in ("pending", "delivered", "failed") else None,
    )


class NatsResults:
    """The outcome bucket, opened on the hub's domain through a JetStream context."""

    def __init__(self, kv: KeyValue, settings: NatsOutboxSettings) -> None:
        self._kv = kv
        self.settings = settings
        #: the largest entry kept (the bucket's limit and the server's message size)
        self.max_value_bytes = min(settings.max_msg_bytes + 16 * 1024, _SERVER_PAYLOAD)

    @classmethod
    async def open(
        cls, js: JetStreamContext, settings: NatsOutboxSettings, *, create: bool
    ) -> NatsResults:
        """The bucket (created with the settings' limits when it is missing and
        ``create``; an existing one is used as it is)."""
        bucket = settings.results_bucket
        try:
            try:
                kv = await js.key_value(bucket)
            except BucketNotFoundError:
                if not create:
                    raise
                kv = await js.create_key_value(
                    KeyValueConfig(
                        bucket=bucket,
                        history=1,
                        ttl=settings.max_age_s,
                        max_value_size=settings.max_msg_bytes + 16 * 1024,
                        max_bytes=settings.results_max_bytes,
                        storage=StorageType.FILE,
                    )
                )
        except BucketNotFoundError as exc:
            raise OutboxError(
                f"no results bucket {bucket} (a consuming gateway creates it)",
                path=settings.display_url,
            ) from exc
        except (APIError, NatsClientError, TimeoutError) as exc:
            raise OutboxError(
                f"cannot open bucket {bucket}: {exc}", path=settings.display_url
            ) from exc
        return cls(kv, settings)

    async def put(self, item_id: str, entry: bytes) -> None:
        """Store ``item_id``'s outcome (OutboxError when the hub does not take it)."""
        try:
            await self._kv.put(item_id, entry)
        except (APIError, NatsClientError, TimeoutError) as exc:
            raise OutboxError(
                f"cannot store the outcome: {exc}", path=self.settings.display_url
            ) from exc

    async def get(self, item_id: str) -> OutboxItem | None:
        """``item_id``'s outcome, or None when it has none (yet)."""
        try:
            entry = await self._kv.get(item_id)
        except KeyNotFoundError:
            return None
        except (APIError, NatsClientError, TimeoutError, ValueError) as exc:
            raise OutboxError(
                f"cannot read the outcome: {exc}", path=self.settings.display_url
            ) from exc
        if entry.value is None:
            return None
        return decode_outcome(item_id, entry.value)
