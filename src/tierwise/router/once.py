"""The gateway's answers by idempotency key: a request sent again under the same
``idempotency_key`` (a page re-sending what it queued while offline, a client whose
answer was lost) gets the first one's answer without being routed again.

Keys are scoped by the caller (its token's client name) and the workload, so one
caller's key never finds another's answer. Answers are kept in an
:class:`~tierwise.outbox.idempotency.IdempotencyStore` (``idempotency_path``: a SQLite
file that survives restarts, or ``:memory:``) for ``idempotency_ttl_s``; a request that
failed keeps no answer, so sending it again routes it again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tierwise.http.asgi import Reply
from tierwise.outbox.idempotency import IdempotencyStore

__all__ = ["OnceReplies"]

_LENGTH_BYTES = 8


def _pack(reply: Reply) -> bytes:
    status, body, headers = reply
    meta = orjson.dumps(
        {"status": status, "headers": [[k.decode(), v.decode()] for k, v in headers]}
    )
    return len(meta).to_bytes(_LENGTH_BYTES, "big") + meta + body


def _unpack(data: bytes) -> Reply:
    length = int.from_bytes(data[:_LENGTH_BYTES], "big")
    meta: dict[str, Any] = orjson.loads(data[_LENGTH_BYTES : _LENGTH_BYTES + length])
    headers = [(k.encode(), v.encode()) for k, v in meta["headers"]]
    return int(meta["status"]), data[_LENGTH_BYTES + length :], headers


class OnceReplies:
    """Replies by key; :meth:`run` routes a key's first request and replays it after."""

    def __init__(self, path: str, *, ttl_s: float, max_entries: int) -> None:
        self.store = IdempotencyStore(path, ttl_s=ttl_s, max_entries=max_entries)

    async def run(self, key: str, answer: Callable[[], Awaitable[Reply]]) -> Reply:
        async def packed() -> bytes:
            return _pack(await answer())

        return _unpack(await self.store.run_once(key, packed))

    def close(self) -> None:
        self.store.close()
