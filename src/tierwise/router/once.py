"""The gateway's answers by idempotency key: a request sent again under the same
``idempotency_key`` (a page re-sending what it queued while offline, a client whose
answer was lost) gets the first one's answer without being routed again.

Keys are scoped by the caller (its token's client name) and the workload, so one
caller's key never finds another's answer; the same key with another request body is
refused (409). Answers are kept in an
:class:`~tierwise.outbox.idempotency.IdempotencyStore` (``idempotency_path``: a SQLite
file that survives restarts, or ``:memory:``) for ``idempotency_ttl_s``; a request that
failed keeps no answer, so sending it again routes it again."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tierwise.errors import HttpError, RouteError
from tierwise.http.asgi import Reply
from tierwise.outbox.idempotency import IdempotencyStore

__all__ = ["MAX_KEY_CHARS", "OnceReplies"]

_LENGTH_BYTES = 8
#: The longest idempotency key a request may carry.
MAX_KEY_CHARS = 256


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

    async def run(
        self, scope: str, key: object, body: bytes, answer: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        """``answer()``'s reply for ``key`` (within ``scope``: the caller and workload):
        routed the first time, replayed after. The same key with another ``body`` is
        refused (409): it names another request."""
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            shown = key if not isinstance(key, str) else f"{len(key)} characters"
            expected = f"a string of 1 to {MAX_KEY_CHARS} characters, got {shown!r}"
            raise RouteError("idempotency_key", expected)
        digest = hashlib.sha256(body).digest()

        async def packed() -> bytes:
            return digest + _pack(await answer())

        stored = await self.store.run_once(f"{scope}\0{key}", packed)
        if stored[: len(digest)] != digest:
            raise HttpError(
                409, f"idempotency_key {key!r} was already used for another request body;"
                " a retry must send the same request, a new request a new key",
            )  # fmt: skip
        return _unpack(stored[len(digest) :])

    def close(self) -> None:
        self.store.close()
