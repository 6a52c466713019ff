"""Raw ASGI helpers shared by the tier server, the gateway and the edge agent: types, a
bounded body reader, one error-to-response mapping, the response writer and the lifespan
protocol."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from tierwise.errors import (
    AccessError,
    HttpError,
    PayloadTooLargeError,
    ProtocolError,
    ServerBusyError,
    TierwiseError,
)
from tierwise.protocol import HEADER_LENGTH_HEADER, parse_header_length

__all__ = [
    "JSON_HEADERS",
    "Headers",
    "Message",
    "Receive",
    "Reply",
    "Scope",
    "Send",
    "body_headers",
    "error_body",
    "header_of",
    "read_body",
    "read_json_object",
    "response_headers",
    "run_lifespan",
    "send_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
#: A complete response: status, body and headers (``content-length`` is added on sending).
Reply = tuple[int, bytes, Headers]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]


def error_body(exc: BaseException) -> Reply:
    """Status, JSON body and extra headers for any exception: tierwise errors carry their
    status; anything else is a 500 whose message names only the exception type."""
    headers: Headers = []
    if isinstance(exc, TierwiseError):
        status = exc.status_code
        message = str(exc)
        if isinstance(exc, ServerBusyError):
            headers.append((b"retry-after", str(exc.retry_after_s).encode()))
        if isinstance(exc, HttpError) and exc.allow:
            headers.append((b"allow", exc.allow.encode()))
        if isinstance(exc, AccessError):
            headers.extend(exc.http_headers)
    else:
        status = 500
        message = f"internal error ({type(exc).__name__}); see the server log"
    return status, orjson.dumps({"error": message}), headers


_HEADER_LENGTH_KEY = HEADER_LENGTH_HEADER.lower().encode()


def header_of(scope: Scope, name: bytes) -> bytes | None:
    """The value of the request's header ``name`` (lowercase, as ASGI gives names), if
    it sent one."""
    for key, value in scope["headers"]:
        if key == name:
            found: bytes = value
            return found
    return None


def body_headers(scope: Scope) -> tuple[int | None, int | None]:
    """``Inference-Header-Content-Length`` and ``Content-Length`` of a V2 request; 415 for
    a content encoding the server does not decode."""
    header_length: int | None = None
    declared: int | None = None
    for key, value in scope["headers"]:
        if key == _HEADER_LENGTH_KEY:
            header_length = parse_header_length(value)
        elif key == b"content-length":
            declared = int(value) if value.isdigit() else None
        elif key == b"content-encoding" and value not in (b"identity", b""):
            raise HttpError(415, f"content-encoding {value.decode()!r} is not supported")
    return header_length, declared


def response_headers(header_length: int | None) -> Headers:
    """Content type (and ``Inference-Header-Content-Length``) of an encoded V2 body: JSON,
    or a JSON header followed by binary tensors."""
    if header_length is None:
        return list(JSON_HEADERS)
    return [
        (b"content-type", b"application/octet-stream"),
        (_HEADER_LENGTH_KEY, str(header_length).encode()),
    ]


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes:
    """The whole request body, refused with 413 as soon as it passes ``limit`` bytes."""
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(declared, limit)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLargeError(len(body), limit)
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProtocolError("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(
    receive: Receive, declared: int | None, limit: int, *, what: str
) -> dict[str, Any]:
    """A small JSON-object body (empty means ``{}``); ProtocolError (400) naming ``what``
    when it is not JSON or not an object."""
    body = await read_body(receive, declared, limit)
    if not body.strip():
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return doc


async def send_response(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """Write a complete response (content-length set here)."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def run_lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
) -> None:
    """Answer the ASGI lifespan protocol: a failed startup is reported to the server
    (which then exits) instead of raised."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as exc:
                logging.getLogger("tierwise.server").exception("startup failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
