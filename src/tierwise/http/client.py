"""The one HTTP client of tierwise: ``await client.request(method, url, ...)`` over a
swappable transport.

The client resolves URLs against its ``base_url``, adds its default headers, encodes
``json=`` bodies, hands an :class:`~tierwise.http.transport.HttpRequest` to its
transport and converts the transport's failures into the project's errors (one place for
it): a timeout becomes :class:`~tierwise.errors.TierTimeoutError`, a peer that cannot be
reached, breaks the exchange or fails the TLS handshake
:class:`~tierwise.errors.TierUnavailableError`, both naming the peer (``name``, else the
URL's origin) in their ``tier`` field; a response over the transport's size limit raises
:class:`~tierwise.errors.PayloadTooLargeError`.
Any HTTP status is an answer, not an error. The transport is pooled keep-alive HTTP/1.1
(:class:`~tierwise.http.http11.Http11Transport`) unless another one is passed in, such
as :class:`~tierwise.http.transport.HttpxTransport` for an ASGI app in process.

Callers without an event loop (CLI commands, worker threads) use :meth:`HttpClient.
request_sync`, which runs the same request on the client's own private loop; a client is
used either from async code or through its sync methods, not both.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import orjson

from tierwise.errors import ConfigError, TierTimeoutError, TierUnavailableError
from tierwise.http.http11 import Http11Transport
from tierwise.http.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpRequest,
    HttpResponse,
    Origin,
    TlsError,
    Transport,
)

__all__ = ["HttpClient"]

_JSON_HEADERS = {"content-type": "application/json"}


class HttpClient:
    """Requests to ``base_url`` (paths starting with ``/`` are joined to it) or to any
    absolute ``http(s)://`` URL, with ``headers`` sent on every request.

    ``timeout_s`` is the default per-call limit (the whole exchange). ``transport``
    replaces the default :class:`~tierwise.http.http11.Http11Transport`, which
    ``max_connections`` (per origin), ``max_response_bytes``, ``ssl_context`` (how TLS
    peers are checked; the system's trust store by default) and ``server_name`` (the name
    a TLS peer's certificate must hold, when not the URL's host) configure. The client
    owns its transport and closes it with :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: Transport | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        name: str | None = None,
        max_connections: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise ConfigError("timeout_s", "a positive number of seconds", timeout_s)
        self._origin: Origin | None = None
        self._prefix = ""
        if base_url is not None:
            try:
                self._origin, path = Origin.split(base_url)
            except ConfigError as exc:
                raise ConfigError("base_url", exc.expected, base_url) from exc
            self._prefix = path.split("?", 1)[0].rstrip("/")
        self.base_url = base_url
        self.name = name
        self.timeout_s = float(timeout_s)
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.transport: Transport = transport or Http11Transport(
            max_connections=max_connections,
            max_response_bytes=max_response_bytes,
            ssl_context=ssl_context,
            server_name=server_name,
        )
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._sync_lock = threading.Lock()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
        json: Any = None,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole response within ``timeout_s`` (the
        client's default when None). ``json`` (any value orjson encodes) replaces
        ``content`` and sets ``content-type: application/json`` unless ``headers`` do.
        Raises TierTimeoutError, TierUnavailableError or PayloadTooLargeError; ConfigError
        for a URL that is neither a path under ``base_url`` nor absolute."""
        origin = self._origin
        if origin is not None and url.startswith("/"):
            target = self._prefix + url
        else:
            origin, target = self._split(url)
        if json is not None:
            content = orjson.dumps(json)
            headers = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
        if self._headers:
            headers = {**self._headers, **headers} if headers else self._headers
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await self.transport.handle(
                HttpRequest(method, origin, target, headers, content, limit_s)
            )
        except TimeoutError as exc:
            raise TierTimeoutError(tier=self.name or str(origin), timeout_s=limit_s) from exc
        except OSError as exc:
            reason = str(exc) if isinstance(exc, TlsError) else f"{type(exc).__name__}: {exc}"
            raise TierUnavailableError(reason, tier=self.name or str(origin)) from exc

    def _split(self, url: str) -> tuple[Origin, str]:
        if url.startswith(("http://", "https://")):
            return Origin.split(url)
        expected = "a path starting with '/'" if self._origin is not None else "an absolute URL"
        raise ConfigError("url", f"{expected} (an http:// or https:// URL)", url)

    async def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float | None = None
    ) -> HttpResponse:
        """``request("GET", url, ...)``."""
        return await self.request("GET", url, headers=headers, timeout_s=timeout_s)

    async def post(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
        json: Any = None,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        """``request("POST", url, ...)``."""
        return await self.request(
            "POST", url, headers=headers, content=content, json=json, timeout_s=timeout_s
        )

    async def aclose(self) -> None:
        """Close the transport's idle connections (calls in flight close their own)."""
        await self.transport.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- callers without an event loop ----------------------------------------------------

    def request_sync(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
        json: Any = None,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        """:meth:`request` for code with no event loop running in its thread: run on the
        client's own loop (kept, with its connections, until :meth:`close`). Calls from
        several threads take turns. ConfigError when an event loop runs in this thread."""
        _no_running_loop("request_sync")
        call = self.request(
            method, url, headers=headers, content=content, json=json, timeout_s=timeout_s
        )
        with self._sync_lock:
            if self._sync_loop is None:
                self._sync_loop = asyncio.new_event_loop()
            return self._sync_loop.run_until_complete(call)

    def close(self) -> None:
        """Close the connections of :meth:`request_sync` calls and the client's loop.
        Called where an event loop runs, it does so on a short-lived thread of its own."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._close_sync_loop()
            return
        closer = threading.Thread(target=self._close_sync_loop, name="tierwise-http-close")
        closer.start()
        closer.join()

    def _close_sync_loop(self) -> None:
        with self._sync_lock:
            loop, self._sync_loop = self._sync_loop, None
            loop = loop or asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.aclose())
            finally:
                loop.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _no_running_loop(method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ConfigError(method, "a thread with no event loop running (await the async method)")
