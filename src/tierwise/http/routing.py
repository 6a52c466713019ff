"""Route tables for the raw ASGI apps, in Starlette's style: each route is a path template
such as ``/v2/models/{name}/versions/{version}/infer``, the methods it takes and an
endpoint. A :class:`RouteTable` compiles its routes once and, per request, finds the
route, calls its endpoint with the path parameters, and turns whatever the endpoint
raises into ``{"error": "..."}`` with the status the error carries (:func:`error_body`).

Templates: a ``{name}`` parameter matches one non-empty path segment, ``{name:path}``
matches the rest of the path, slashes included. The path matched is ASGI's
``scope["path"]``, already percent-decoded by the server, so a parameter holds the
decoded text (``/v2/models/a%20b`` gives ``a b``); an encoded slash is a slash.

Lookup: static paths by one dict lookup; templated ones by their compiled regexes, in
the order declared, the outcome kept in a bounded cache of recent paths so that a path
seen before (a model's infer route) costs one dict lookup too. Static routes win over
templated ones; the first template whose path matches decides, and a method it does
not take is 405 with an ``Allow`` header. Paths are matched without surplus slashes at
either end: ``/v2/models/m/`` names ``/v2/models/m``, and ``/files/{rest:path}`` does not
match ``/files/``.

Access: a route may name the ``scope`` it needs (``infer``, ``admin``, ``telemetry``);
a table given a :class:`~tierwise.security.Guard` asks it before calling such a route's
endpoint (401 without a valid bearer token, 403 without the scope) and hands the caller
to the endpoint as ``request.principal``. Routes without a scope (health probes) are
open to anyone.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from tierwise.errors import ConfigError, ForbiddenError, HttpError, TierwiseError
from tierwise.http.asgi import (
    JSON_HEADERS,
    Receive,
    Reply,
    Send,
    error_body,
    header_of,
    send_response,
)
from tierwise.http.asgi import Scope as AsgiScope
from tierwise.security import Guard, Principal, Scope, audit

__all__ = [
    "Answered",
    "AuditedEndpoint",
    "Endpoint",
    "Request",
    "Route",
    "RouteTable",
    "audited",
    "authorization_of",
]

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?}")
_CONVERTORS: Final = {"str": "[^/]+", "path": ".*"}
_NO_PARAMS: Final[Mapping[str, str]] = {}


class Request:
    """What an endpoint gets: the ASGI scope and receive channel, the path parameters,
    when the request arrived (``time.monotonic()``) and who sent it (``principal``: None
    on an open endpoint or server)."""

    __slots__ = ("params", "principal", "receive", "scope", "started_s")

    def __init__(
        self,
        scope: AsgiScope,
        receive: Receive,
        params: Mapping[str, str],
        started_s: float,
        principal: Principal | None = None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.params = params
        self.started_s = started_s
        self.principal = principal

    @property
    def client(self) -> str | None:
        """The client name of the caller's token, when it sent one."""
        return None if self.principal is None else self.principal.client

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path


def authorization_of(scope: AsgiScope) -> bytes | None:
    """The request's ``Authorization`` header value, if it sent one."""
    return header_of(scope, b"authorization")


@dataclass(frozen=True, slots=True)
class Answered:
    """One request as a table answered it: its route (None when no route matched), path
    parameters, caller (None when open or refused), status and the error it raised."""

    scope: AsgiScope
    route: Route | None
    params: Mapping[str, str]
    principal: Principal | None
    status: int
    error: BaseException | None

    @property
    def client(self) -> str | None:
        """The caller's client name: its token's, or the one a refusal for lack of scope
        names; None for an open endpoint or a caller without a valid token."""
        if self.principal is not None:
            return self.principal.client
        if isinstance(self.error, ForbiddenError):
            return self.error.client
        return None


#: An endpoint answers one request with a complete reply; errors it raises are mapped.
Endpoint = Callable[[Request], Awaitable[Reply]]


#: An admin endpoint: the request, and the details it records for its audit line.
AuditedEndpoint = Callable[[Request, dict[str, object]], Awaitable[Reply]]


def audited(action: str, endpoint: AuditedEndpoint) -> Endpoint:
    """``endpoint`` with its outcome recorded as one audit line (the caller's client
    name, never its token; errors included, with their status)."""

    async def answer(request: Request) -> Reply:
        details: dict[str, object] = {}
        try:
            reply = await endpoint(request, details)
        except Exception as exc:
            status = exc.status_code if isinstance(exc, TierwiseError) else 500
            audit.record(action, details, request.client, status)
            raise
        audit.record(action, details, request.client, reply[0])
        return reply

    answer.__name__ = action
    return answer


class Route:
    """One route: a path template, the methods it takes (``None``: any method), the
    endpoint that answers them and the scope a caller needs (``None``: anyone)."""

    __slots__ = ("endpoint", "methods", "name", "param_names", "path", "regex", "scope")

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        methods: Iterable[str] | None = ("GET",),
        name: str | None = None,
        scope: Scope | None = None,
    ) -> None:
        if not path.startswith("/"):
            raise ConfigError("path", "a template starting with '/'", path)
        self.path = path
        self.endpoint = endpoint
        self.name = name or getattr(endpoint, "__name__", path)
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        if self.methods is not None and not self.methods:
            raise ConfigError("methods", "at least one method, or None for any", methods)
        self.regex, self.param_names = _compile(path)
        self.scope = scope

    def __repr__(self) -> str:
        methods = "*" if self.methods is None else ",".join(sorted(self.methods))
        return f"Route({self.path!r}, methods={methods}, name={self.name!r}, scope={self.scope!r})"


def _compile(path: str) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    """The regex of a templated path and its parameter names; no regex for a static one."""
    pattern: list[str] = []
    names: list[str] = []
    last = 0
    for found in _PARAM.finditer(path):
        name, convertor = found.group(1), found.group(2) or "str"
        if convertor not in _CONVERTORS:
            raise ConfigError(f"path {path!r}", f"a convertor in {sorted(_CONVERTORS)}", convertor)
        if name in names:
            raise ConfigError(f"path {path!r}", "each parameter named once", name)
        pattern.append(re.escape(path[last : found.start()]))
        pattern.append(f"(?P<{name}>{_CONVERTORS[convertor]})")
        names.append(name)
        last = found.end()
    rest = _PARAM.sub("", path)
    if "{" in rest or "}" in rest:
        raise ConfigError("path", "parameters written {name} or {name:convertor}", path)
    if not names:
        return None, ()
    pattern.append(re.escape(path[last:]))
    return re.compile("".join(pattern), re.DOTALL), tuple(names)


class _Target:
    """The routes of one path template, by method."""

    __slots__ = ("allow", "any", "by_method")

    def __init__(self) -> None:
        self.by_method: dict[str, Route] = {}
        self.any: Route | None = None
        self.allow = ""

    def add(self, route: Route) -> None:
        clash = (
            self.any is not None
            or (route.methods is None and self.by_method)
            or (route.methods is not None and route.methods & self.by_method.keys())
        )
        if clash:
            raise ConfigError("routes", f"one endpoint per method of {route.path!r}", route)
        if route.methods is None:
            self.any = route
        else:
            self.by_method.update(dict.fromkeys(route.methods, route))
        self.allow = ", ".join(sorted(self.by_method))


_Found = tuple[_Target, Mapping[str, str]]


class RouteTable:
    """Routes compiled once, matched per request; an ASGI app for ``http`` scopes.

    ``log`` takes errors: those of other types than tierwise's with their traceback, and
    tierwise errors with a 5xx status in one line unless ``log_server_errors`` is False.
    ``not_found_hint`` ends the 404 message; ``cache_size`` bounds the paths remembered
    (paths come from clients: the cache starts afresh when full). ``guard`` checks the
    callers of routes that name a scope (None, or a guard with no tokens: open).
    ``on_answer`` sees every request's outcome before its reply is sent (an audit trail
    written then is complete by the time the caller has the answer).
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        log: logging.Logger | None = None,
        log_server_errors: bool = True,
        not_found_hint: str = "",
        cache_size: int = 4096,
        guard: Guard | None = None,
        on_answer: Callable[[Answered], None] | None = None,
    ) -> None:
        if cache_size < 0:
            raise ConfigError("cache_size", ">= 0", cache_size)
        self.routes = list(routes)
        self.log = log or logging.getLogger("tierwise.http")
        self.log_server_errors = log_server_errors
        self.not_found_hint = not_found_hint
        self.cache_size = cache_size
        self.guard = guard if guard is not None and guard.protects else None
        self.on_answer = on_answer
        self._static: dict[str, _Found] = {}
        self._templated: list[tuple[re.Pattern[str], _Target]] = []
        by_path: dict[str, _Target] = {}
        for route in self.routes:
            target = by_path.get(route.path)
            if target is None:
                target = by_path[route.path] = _Target()
                if route.regex is None:
                    self._static[route.path] = (target, _NO_PARAMS)
                else:
                    self._templated.append((route.regex, target))
            target.add(route)
        # static paths stay in the cache: one lookup answers a known path of either kind
        self._cache: dict[str, _Found | None] = dict(self._static)
        self._cache_limit = len(self._static) + cache_size

    def find(self, path: str) -> _Found | None:
        """The routes whose template ``path`` matches, and its parameters; None when no
        template matches."""
        try:
            return self._cache[path]
        except KeyError:
            pass
        found = self._search(path)
        if self.cache_size:
            if len(self._cache) >= self._cache_limit:
                self._cache = dict(self._static)
            self._cache[path] = found
        return found

    def _search(self, path: str) -> _Found | None:
        trimmed = "/" + path.strip("/")
        found = self._static.get(trimmed)
        if found is not None:
            return found
        for regex, target in self._templated:
            matched = regex.fullmatch(trimmed)
            if matched is not None:
                return target, matched.groupdict()
        return None

    def has_path(self, path: str) -> bool:
        """Whether some route's template matches ``path`` (whatever the method)."""
        return self.find(path) is not None

    def match(self, method: str, path: str) -> tuple[Route, Mapping[str, str]]:
        """The route for ``method`` and ``path`` with the path parameters; HttpError 404
        when no template matches, 405 (naming the methods allowed) when the path's
        routes do not take ``method``."""
        found = self.find(path)
        if found is None:
            raise HttpError(404, f"no route for {method} {path}{self.not_found_hint}")
        target, params = found
        route = target.by_method.get(method) or target.any
        if route is None:
            allowed = target.allow.replace(", ", " or ")
            raise HttpError(
                405, f"method {method} not allowed here; use {allowed}", allow=target.allow
            )
        return route, params

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.respond(scope, receive, send)

    async def respond(
        self, scope: AsgiScope, receive: Receive, send: Send, started_s: float | None = None
    ) -> tuple[int, int]:
        """Answer one HTTP request: the matched endpoint's reply, or the error it (or the
        match) raised. Returns the status and the body's size in bytes."""
        method: str = scope["method"]
        path: str = scope["path"]
        route: Route | None = None
        params: Mapping[str, str] = _NO_PARAMS
        principal: Principal | None = None
        error: Exception | None = None
        try:
            route, params = self.match(method, path)
            if self.guard is not None and route.scope is not None:
                principal = self.guard.check(route.scope, authorization_of(scope))
            request = Request(
                scope,
                receive,
                params,
                time.monotonic() if started_s is None else started_s,
                principal,
            )
            status, body, headers = await route.endpoint(request)
        except Exception as exc:
            error = exc
            status, body, headers = self.error_reply(exc, method, path)
        if self.on_answer is not None:
            self.on_answer(Answered(scope, route, params, principal, status, error))
        await send_response(send, status, body, headers)
        return status, len(body)

    def error_reply(self, exc: BaseException, method: str, path: str) -> Reply:
        """The JSON error reply for ``exc`` (see :func:`error_body`), logged as the
        table's settings say."""
        status, body, headers = error_body(exc)
        if not isinstance(exc, TierwiseError):
            self.log.error("unhandled error on %s %s", method, path, exc_info=exc)
        elif status >= 500 and self.log_server_errors:
            self.log.error("%s %s: %s", method, path, exc)
        return status, body, headers + JSON_HEADERS
