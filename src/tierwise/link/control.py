"""The link's control endpoint (loopback only, no tokens: it steers a rehearsal network):

- ``GET /v1/link``: state and counters;
- ``POST /v1/link/partition[?mode=blackhole|reset]`` and ``POST /v1/link/heal``;
- ``PUT /v1/link`` with ``{"rtt_p50_ms", "rtt_p99_ms", "bandwidth_mbps"}`` (any of them).

The app's lifespan starts and stops the relay, so it runs on the control server's loop,
where ``SIGUSR1`` partitions the link and ``SIGUSR2`` heals it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any
from urllib.parse import parse_qs

import orjson

from tierwise.errors import ConfigError
from tierwise.http.asgi import (
    JSON_HEADERS,
    Receive,
    Reply,
    Scope,
    Send,
    body_headers,
    read_json_object,
    run_lifespan,
)
from tierwise.http.routing import Request, Route, RouteTable
from tierwise.link.relay import LinkRelay

__all__ = ["LinkControlApp", "add_signal_handlers"]

log = logging.getLogger("tierwise.link")

_RESHAPE_KEYS = ("rtt_p50_ms", "rtt_p99_ms", "bandwidth_mbps")


def add_signal_handlers(relay: LinkRelay) -> None:
    """``SIGUSR1`` partitions ``relay``, ``SIGUSR2`` heals it (where the loop allows)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, relay.partition)
        loop.add_signal_handler(signal.SIGUSR2, relay.heal)


class LinkControlApp:
    """The control endpoint's ASGI app around one relay (see the module docstring)."""

    def __init__(self, relay: LinkRelay, *, announce: bool = False) -> None:
        self.relay = relay
        self.announce = announce  # print the link's addresses once it listens
        self.routes = RouteTable(
            [
                Route("/v1/link", self._status),
                Route("/v1/link", self._reshape, methods=["PUT"]),
                Route("/v1/link/partition", self._partition, methods=["POST"]),
                Route("/v1/link/heal", self._heal, methods=["POST"]),
            ],
            log=log,
            not_found_hint="the link answers /v1/link",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self._startup, self.relay.stop)
        elif scope["type"] == "http":
            await self.routes.respond(scope, receive, send)

    async def _startup(self) -> None:
        await self.relay.start()
        add_signal_handlers(self.relay)
        described = _describe(self.relay.status())
        log.info("link %s", described)
        if self.announce:
            print(f"link {described}", flush=True)

    async def _status(self, request: Request) -> Reply:
        return _json(self.relay.status())

    async def _partition(self, request: Request) -> Reply:
        raw = request.scope.get("query_string", b"").decode("latin-1")
        mode = parse_qs(raw).get("mode", [None])[-1]
        if mode not in (None, "blackhole", "reset"):
            raise ConfigError("mode", "blackhole or reset", mode)
        self.relay.partition(mode)
        log.info("link %s partitioned (%s)", self.relay.port, self.relay.mode)
        return _json(self.relay.status())

    async def _heal(self, request: Request) -> Reply:
        self.relay.heal()
        log.info("link %s healed", self.relay.port)
        return _json(self.relay.status())

    async def _reshape(self, request: Request) -> Reply:
        _, declared = body_headers(request.scope)
        doc = await read_json_object(request.receive, declared, 4096, what="link shape")
        unknown = sorted(set(doc) - set(_RESHAPE_KEYS))
        if unknown:
            raise ConfigError("link shape", f"only {', '.join(_RESHAPE_KEYS)}", unknown)
        values: dict[str, float | None] = {}
        for key in _RESHAPE_KEYS:
            value = doc.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ConfigError(key, "a number >= 0", value)
            values[key] = None if value is None else float(value)
        self.relay.reshape(**values)
        return _json(self.relay.status())


def _json(doc: dict[str, Any]) -> Reply:
    return 200, orjson.dumps(doc), list(JSON_HEADERS)


def _describe(status: dict[str, Any]) -> str:
    bandwidth = status["bandwidth_mbps"]
    pace = "unpaced" if bandwidth is None else f"{bandwidth:g} Mbit/s"
    return (
        f"{status['listen']} -> {status['target']}: rtt p50 {status['rtt_p50_ms']:g} ms, "
        f"p99 {status['rtt_p99_ms']:g} ms, {pace}"
    )
