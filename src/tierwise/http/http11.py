"""The default transport: pooled keep-alive HTTP/1.1 over asyncio streams, responses
parsed by httptools, one write per request.

A router hop must cost well under a millisecond; general-purpose async clients spend more
than that per call on this class of machine. This one does only what a V2 call needs:
any method with a body, Content-Length or chunked responses, a bounded response size, and
a per-call timeout. Each origin (scheme, host, port) has its own pool of at most
``max_connections`` connections; a connection that fails or times out is closed, never
reused.

``https://`` origins are TLS: the handshake happens once per connection (a plain
``http://`` connection never touches the ssl module), and a handshake that fails, or a
server that drops a fresh TLS connection before answering (how a server asking for
client certificates refuses a client without one), is a
:class:`~tierwise.http.transport.TlsError` saying what failed and what to set.
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
    TlsError,
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

    def __init__(self) -> None:
        super().__init__("the peer closed the connection before answering")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class _Pool:
    """The idle connections to one origin and the slots bounding how many are open;
    ``tls`` and ``server_hostname`` for an https origin (None for http)."""

    def __init__(
        self,
        origin: Origin,
        max_connections: int,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.origin = origin
        self.fixed = f"host: {origin.host_header}\r\nconnection: keep-alive\r\n"
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(max_connections)
        self.tls = tls
        self.server_hostname = server_hostname


class Http11Transport:
    """Keep-alive HTTP/1.1 to any number of ``http://`` or ``https://`` origins, at most
    ``max_connections`` open to each. TLS peers are checked with ``ssl_context`` (the
    system's trust store by default) against ``server_name`` when given (it is also the
    SNI sent), else the URL's host."""

    def __init__(
        self,
        *,
        max_connections: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        if isinstance(max_connections, bool) or max_connections < 1:
            raise ConfigError("max_connections", ">= 1", max_connections)
        if isinstance(max_response_bytes, bool) or max_response_bytes < 1:
            raise ConfigError("max_response_bytes", ">= 1", max_response_bytes)
        if server_name is not None and (not isinstance(server_name, str) or not server_name):
            raise ConfigError("server_name", "a non-empty host name", server_name)
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self.server_name = server_name
        self._ssl_context = ssl_context
        self._pools: dict[str, _Pool] = {}

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Send one request and read the whole response within ``request.timeout_s``;
        raises TimeoutError, OSError (ConnectionError and TlsError included) or
        PayloadTooLargeError."""
        pool = self._pools.get(request.origin.key)
        if pool is None:
            pool = self._pools[request.origin.key] = self._new_pool(request.origin)
        async with asyncio.timeout(request.timeout_s), pool.slots:
            while True:
                conn, reused = await self._connection(pool)
                try:
                    response, reusable = await self._exchange(pool, conn, request)
                except _StaleConnectionError as exc:
                    conn.close()
                    if reused:
                        continue  # the peer closed an idle connection: try a fresh one
                    if pool.tls is not None:
                        raise _refused(pool, "closed the connection without answering") from exc
                    raise
                except ssl.SSLError as exc:
                    conn.close()
                    raise _tls_error(pool, exc) from exc
                except BaseException:
                    conn.close()
                    raise
                if reusable:
                    pool.idle.append(conn)
                else:
                    conn.close()
                return response

    def _new_pool(self, origin: Origin) -> _Pool:
        if origin.scheme != "https":
            return _Pool(origin, self.max_connections)
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        name = self.server_name or origin.host
        return _Pool(origin, self.max_connections, self._ssl_context, name)

    async def _connection(self, pool: _Pool) -> tuple[_Connection, bool]:
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                return conn, True
            conn.close()
        origin = pool.origin
        if pool.tls is None:
            reader, writer = await asyncio.open_connection(origin.host, origin.port)
            return _Connection(reader, writer), False
        try:
            reader, writer = await asyncio.open_connection(
                origin.host, origin.port, ssl=pool.tls, server_hostname=pool.server_hostname
            )
        except ssl.SSLError as exc:
            raise _tls_error(pool, exc) from exc
        except ConnectionResetError as exc:
            raise _refused(pool, "reset the connection during the handshake") from exc
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


#: What to set for the certificate checks that fail most, by OpenSSL's verify code.
_UNTRUSTED = "give the CA that signed the server's certificate as tls.ca"
_VERIFY_HINTS = {
    2: _UNTRUSTED,  # unable to get issuer certificate
    9: "the server's certificate is not valid yet (check both clocks)",
    10: "the server needs a renewed certificate",
    18: _UNTRUSTED,  # self-signed certificate
    19: _UNTRUSTED,  # self-signed certificate in certificate chain
    20: _UNTRUSTED,  # unable to get local issuer certificate
    21: _UNTRUSTED,  # unable to verify the first certificate
}
_NAME_MISMATCH = (62, 64)  # hostname mismatch, IP address mismatch
#: Alerts a server sends when it will not accept this client (mutual TLS).
_REFUSAL_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "HANDSHAKE_FAILURE",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "ACCESS_DENIED",
)


def _refused(pool: _Pool, how: str) -> TlsError:
    return TlsError(
        f"the server at {pool.origin} refused the TLS handshake (it {how}); if it requires "
        "client certificates (mutual TLS), give one that its CA signed as tls.cert and tls.key"
    )


def _tls_error(pool: _Pool, exc: ssl.SSLError) -> TlsError:
    """What failed in a TLS handshake with ``pool``'s origin, and what would fix it."""
    where = f"TLS handshake with {pool.origin} failed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        what = str(exc.verify_message or exc.reason or "").rstrip(".")
        if exc.verify_code in _NAME_MISMATCH:
            hint = "set tls.server_name to a name the certificate holds"
        else:
            hint = _VERIFY_HINTS.get(exc.verify_code, "check tls.ca and the server's certificate")
        return TlsError(f"{where}: certificate verify failed: {what}; {hint}")
    reason = str(exc.reason or exc)
    if any(alert in reason for alert in _REFUSAL_ALERTS):
        return _refused(pool, f"sent the TLS alert {reason.lower().replace('_', ' ')!r}")
    if reason == "WRONG_VERSION_NUMBER":
        return TlsError(f"{where}: the peer does not speak TLS (is it an http:// server?)")
    return TlsError(f"{where}: {reason.lower().replace('_', ' ')}")
