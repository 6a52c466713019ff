"""What travels between :class:`~tierwise.http.client.HttpClient` and a transport, the
transport contract, and a transport built on httpx.

A transport sends one :class:`HttpRequest` and returns the whole :class:`HttpResponse`
within ``request.timeout_s``. It reports failure in three ways only: ``TimeoutError``
when the time ran out, ``OSError`` (``ConnectionError`` included) when the peer could
not be reached or broke the exchange, and :class:`~tierwise.errors.PayloadTooLargeError`
when the response body passed the transport's limit. A failed TLS handshake is a
:class:`TlsError` (a ``ConnectionError``) whose message says what failed and what to set.
The client turns the first two into the project's errors, so callers never see a
transport's own exceptions.

The default transport is :class:`~tierwise.http.http11.Http11Transport` (pooled
keep-alive HTTP/1.1, the router's hot path). :class:`HttpxTransport` puts httpx
underneath: an ASGI app called in process (tests), or httpx's own pool and TLS
verification.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from tierwise.errors import ConfigError, PayloadTooLargeError

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AsgiApp",
    "HttpRequest",
    "HttpResponse",
    "HttpxTransport",
    "Origin",
    "TlsError",
    "Transport",
]

#: Largest response body a transport reads unless told otherwise.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024

#: An ASGI application: ``await app(scope, receive, send)``.
AsgiApp = Callable[..., Coroutine[Any, Any, None]]


class TlsError(ConnectionError):
    """A TLS peer could not be talked to: the handshake failed or the server refused the
    session. The message is whole (what failed, and which ``tls.*`` setting would fix
    it) and never holds key material."""


class Origin:
    """Scheme, host and port of a peer: what one pool of connections talks to.

    ``key`` identifies it (the port always spelled out); ``host_header`` is what the
    ``Host`` header carries; ``str()`` gives ``scheme://host[:port]``.
    """

    __slots__ = ("host", "host_header", "key", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int | None = None) -> None:
        if scheme not in ("http", "https") or not host:
            raise ConfigError("url", "an http:// or https:// URL with a host", f"{scheme}://{host}")
        self.scheme = scheme
        self.host = host
        self.port = port or (443 if scheme == "https" else 80)
        name = f"[{host}]" if ":" in host else host
        self.host_header = name if port is None else f"{name}:{port}"
        self.key = f"{scheme}://{name}:{self.port}"

    @classmethod
    def split(cls, url: str) -> tuple[Origin, str]:
        """``url`` as its origin and request target (path and query); ConfigError when
        it is not an absolute http(s) URL."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError("url", "a URL with a valid port", url) from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("url", "an http:// or https:// URL with a host", url)
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        return cls(parts.scheme, parts.hostname, port), target

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    def __repr__(self) -> str:
        return f"Origin({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Origin) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(slots=True)
class HttpRequest:
    """One request as a transport sees it; ``headers`` are the caller's, beside which the
    transport sets ``Host``, ``Connection`` and ``Content-Length`` itself."""

    method: str
    origin: Origin
    target: str
    headers: Mapping[str, str] | None
    content: bytes
    timeout_s: float

    @property
    def url(self) -> str:
        return f"{self.origin}{self.target}"


@dataclass(slots=True)
class HttpResponse:
    """Status, lower-cased headers and the whole body."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        """The body as UTF-8 (undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON."""
        return orjson.loads(self.content)


class Transport(Protocol):
    """Sends requests for a :class:`~tierwise.http.client.HttpClient` (see the module
    docstring for what it may raise)."""

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and read the whole response within ``request.timeout_s``."""
        ...

    async def aclose(self) -> None:
        """Release connections; the transport is not used afterwards."""
        ...


class HttpxTransport:
    """httpx underneath: with ``app``, an ASGI application called in this process (no
    socket; for tests); otherwise httpx's connection pool, with ``verify`` (True, False
    or an ``ssl.SSLContext``) deciding how TLS peers are checked. Redirects are not
    followed; responses over ``max_response_bytes`` raise PayloadTooLargeError."""

    def __init__(
        self,
        *,
        app: AsgiApp | None = None,
        verify: bool | ssl.SSLContext = True,
        max_connections: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if max_connections < 1:
            raise ConfigError("max_connections", ">= 1", max_connections)
        if max_response_bytes < 1:
            raise ConfigError("max_response_bytes", ">= 1", max_response_bytes)
        self.max_response_bytes = max_response_bytes
        transport = httpx.ASGITransport(app=app) if app is not None else None
        self._client = httpx.AsyncClient(
            transport=transport,
            verify=verify,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections),
        )

    async def handle(self, request: HttpRequest) -> HttpResponse:
        limit = self.max_response_bytes
        try:
            async with (
                asyncio.timeout(request.timeout_s),
                self._client.stream(
                    request.method,
                    request.url,
                    content=request.content,
                    headers=dict(request.headers or {}),
                    timeout=request.timeout_s,
                ) as answer,
            ):
                chunks: list[bytes] = []
                size = 0
                async for chunk in answer.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLargeError(size, limit)
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc) or type(exc).__name__) from exc
        except httpx.TransportError as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        headers = {name.lower(): value for name, value in answer.headers.items()}
        return HttpResponse(answer.status_code, headers, b"".join(chunks))

    async def aclose(self) -> None:
        await self._client.aclose()
