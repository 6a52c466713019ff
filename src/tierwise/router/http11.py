"""A small pooled HTTP/1.1 client for calling tiers: keep-alive connections over asyncio
streams, responses parsed by httptools, one write per request.

A router hop must cost well under a millisecond; general-purpose async clients spend more
than that per call on this class of machine. This one does only what a V2 call needs:
POST/GET with a body, Content-Length or chunked responses, a bounded response size, and a
per-call timeout. A connection that fails or times out is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from tierwise.errors import ConfigError

__all__ = ["HttpClient", "HttpResponse"]


@dataclass(slots=True)
class HttpResponse:
    """Status, lower-cased headers and the whole body."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""


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


class HttpClient:
    """Keep-alive HTTP/1.1 to one origin (``http://`` or ``https://``)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 64,
        max_response_bytes: int = 256 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("base_url", "an http:// or https:// URL with a host", base_url)
        if max_connections < 1:
            raise ConfigError("max_connections", ">= 1", max_connections)
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self._ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        host_header = self.host if parts.port is None else f"{self.host}:{parts.port}"
        fixed = {"host": host_header, "connection": "keep-alive", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._idle: deque[_Connection] = deque()
        self._slots: asyncio.Semaphore | None = None
        self._max_connections = max_connections
        self._max_response = max_response_bytes

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout_s: float,
    ) -> HttpResponse:
        """Send one request and read the whole response within ``timeout_s``; raises
        TimeoutError, OSError or ConnectionError (the caller classifies them)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        async with asyncio.timeout(timeout_s), self._slots:
            while True:
                conn, reused = await self._connection()
                try:
                    response, reusable = await self._exchange(conn, method, path, content, headers)
                except _StaleConnectionError:
                    conn.close()
                    if reused:
                        continue  # the peer closed an idle connection: try a fresh one
                    raise
                except BaseException:
                    conn.close()
                    raise
                if reusable:
                    self._idle.append(conn)
                else:
                    conn.close()
                return response

    async def _connection(self) -> tuple[_Connection, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                return conn, True
            conn.close()
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl)
        return _Connection(reader, writer), False

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        path: str,
        content: bytes,
        headers: Mapping[str, str] | None,
    ) -> tuple[HttpResponse, bool]:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._fixed}{extra}"
            f"content-length: {len(content)}\r\n\r\n"
        ).encode("latin-1")
        if len(content) < 65536:
            conn.writer.write(head + content)
        else:
            conn.writer.write(head)
            conn.writer.write(content)
            await conn.writer.drain()
        parse = _Parse(self._max_response)
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
                raise ConnectionError(f"response over {self._max_response} bytes")
        response = parse.response
        response.status_code = parser.get_status_code()
        response.content = b"".join(parse.chunks)
        return response, parse.keep_alive

    async def aclose(self) -> None:
        """Close the idle connections (calls in flight close their own)."""
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()
