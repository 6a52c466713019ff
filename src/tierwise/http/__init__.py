"""The one HTTP layer.

Serving: the raw ASGI pieces (:mod:`~tierwise.http.asgi`: bounded body reader, the one
error-to-response mapping, the response writer) and the route table the tier server, the
gateway and the agent declare their paths in (:mod:`~tierwise.http.routing`).

Calling: one client, :class:`HttpClient`, whose transport is swappable
(:mod:`~tierwise.http.transport`): the pooled keep-alive HTTP/1.1 transport
(:class:`Http11Transport`, :mod:`~tierwise.http.http11`) by default, or
:class:`HttpxTransport` (an ASGI app in process, or httpx's own pool and TLS).
"""

from __future__ import annotations

from tierwise.http.asgi import (
    JSON_HEADERS,
    Headers,
    Message,
    Receive,
    Reply,
    Scope,
    Send,
    body_headers,
    error_body,
    header_of,
    read_body,
    read_json_object,
    response_headers,
    run_lifespan,
    send_response,
)
from tierwise.http.client import HttpClient
from tierwise.http.http11 import Http11Transport
from tierwise.http.routing import Answered, Endpoint, Request, Route, RouteTable, authorization_of
from tierwise.http.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    AsgiApp,
    HttpRequest,
    HttpResponse,
    HttpxTransport,
    Origin,
    Transport,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "JSON_HEADERS",
    "Answered",
    "AsgiApp",
    "Endpoint",
    "Headers",
    "Http11Transport",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "HttpxTransport",
    "Message",
    "Origin",
    "Receive",
    "Reply",
    "Request",
    "Route",
    "RouteTable",
    "Scope",
    "Send",
    "Transport",
    "body_headers",
    "error_body",
    "header_of",
    "read_body",
    "read_json_object",
    "response_headers",
    "run_lifespan",
    "authorization_of",
    "send_response",
]
