"""The default transport: pooled keep-alive HTTP/1.1 over asyncio streams, responses
parsed by httptools, one write per request.

A router hop must cost well under a millisecond; general-purpose async clients spend more
than that per call on this class of machine. This one does only what a V2 call needs:
any method with a body, Content-Length or chunked responses, a bounded response size, and
a per-call timeout. Each origin (scheme, host, port) has its own pool of at most
``max_connections`` connections; a connection that fails or times out is closed, never
reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque

import httptools

from tierwise.errors import ConfigError, PayloadTooLargeError
from tierwise.http.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpRequest,
    HttpResponse,
    Origin,
)

__all__ = ["Http11Transport"]


class _Parse:
    """httptools callbacks collecting one response."""

    def __init__(self, limit_bytes: int) -> None:
        self.response = HttpResponse(0)
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit_bytes
        self.done = False
        self.too_large = False
        self.started = False
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None

    def on_message_begin(self) -> None:
        self.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        # httptools answers should_keep_alive() only while the headers are current
        if self.parser is not None:
            self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            self.too_large = True
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class _StaleConnectionError(ConnectionError):
    """The connection closed before any of the response arrived."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class _Pool:
    """The idle connections to one origin and the slots bounding how many are open."""

    def __init__(self, origin: Origin, max_connections: int) -> None:
        self.origin = origin
        self.fixed = f"host: {origin.host_header}\r\nconnection: keep-alive\r\n"
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(max_connections)


class Http11Transport:
    """Keep-alive HTTP/1.1 to any number of ``http://`` or ``https://`` origins, at most
    ``max_connections`` open to each; TLS peers are checked with ``ssl_context`` (the
    system's trust store by default)."""

    def __init__(
        self,
        *,
        max_connections: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(max_connections, bool) or max_connections < 1:
            raise ConfigError("max_connections", ">= 1", max_connections)
        if isinstance(max_response_bytes, bool) or max_response_bytes < 1:
            raise ConfigError("max_response_bytes", ">= 1", max_response_bytes)
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self._ssl_context = ssl_context
        self._pools: dict[str, _Pool] = {}

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Send one request and read the whole response within ``request.timeout_s``;
        raises TimeoutError, OSError (ConnectionError included) or PayloadTooLargeError."""
        pool = self._pools.get(request.origin.key)
        if pool is None:
            pool = self._pools[request.origin.key] = _Pool(request.origin, self.max_connections)
        async with asyncio.timeout(request.timeout_s), pool.slots:
            while True:
                conn, reused = await self._connection(pool)
                try:
                    response, reusable = await self._exchange(pool, conn, request)
                except _StaleConnectionError:
                    conn.close()
                    if reused:
                        continue  # the peer closed an idle connection: try a fresh one
                    raise
                except BaseException:
                    conn.close()
                    raise
                if reusable:
                    pool.idle.append(conn)
                else:
                    conn.close()
                return response

    async def _connection(self, pool: _Pool) -> tuple[_Connection, bool]:
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                return conn, True
            conn.close()
        origin = pool.origin
        tls: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            tls = self._ssl_context
        reader, writer = await asyncio.open_connection(origin.host, origin.port, ssl=tls)
        return _Connection(reader, writer), False

    async def _exchange(
        self, pool: _Pool, conn: _Connection, request: HttpRequest
    ) -> tuple[HttpResponse, bool]:
        content = request.content
        headers = request.headers
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        head = (
            f"{request.method} {request.target} HTTP/1.1\r\n{pool.fixed}{extra}"
            f"content-length: {len(content)}\r\n\r\n"
        ).encode("latin-1")
        if len(content) < 65536:
            conn.writer.write(head + content)
        else:
            conn.writer.write(head)
            conn.writer.write(content)
            await conn.writer.drain()
        parse = _Parse(self.max_response_bytes)
        parser = httptools.HttpResponseParser(parse)
        parse.parser = parser
        while not parse.done:
            try:
                data = await conn.reader.read(65536)
            except ConnectionResetError as exc:
                if not parse.started:
                    raise _StaleConnectionError() from exc
                raise
            if not data:
                if not parse.started:
                    raise _StaleConnectionError()
                raise ConnectionError("the peer closed the connection mid-response")
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise ConnectionError(f"malformed HTTP response: {exc}") from exc
            if parse.too_large:
                raise PayloadTooLargeError(parse.size, self.max_response_bytes)
        response = parse.response
        response.status_code = parser.get_status_code()
        response.content = b"".join(parse.chunks)
        return response, parse.keep_alive

    async def aclose(self) -> None:
        """Close the idle connections (calls in flight close their own)."""
        for pool in list(self._pools.values()):
            while pool.idle:
                conn = pool.idle.pop()
                conn.close()
                with contextlib.suppress(OSError):
                    await conn.writer.wait_closed()
