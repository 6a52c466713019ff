"""The agent's ASGI app: the tier server, the agent's control endpoints and, on a second
port, the router front.

- ``GET  /v2/agent/status``    health, temperature, queue depth, last sync, and each
  bundle's version, generation, kept versions and last sync (scope ``telemetry``)
- ``POST /v2/agent/sync``      sync now and answer with the result (``admin``)
- ``PUT  /v2/agent/desired``   ``{"ref": VERSION | TAG | sha256:..., "bundle"?: NAME}`` or
  ``{"refs": {NAME: REF, ...}}``: set what a bundle (``bundle`` may be left out on a
  one-bundle node) or several should run, the others keeping theirs; written to the
  desired-state file, then a sync (``admin``)
- ``POST /v2/agent/rollback``  ``{"bundle"?: NAME, "version"?: ...}``: that bundle back to
  its previous kept version; the other bundles are not touched (``admin``)
- ``GET  /v2/health/ready``    whether the node serves its models (open)

Everything else on the server port is the tier server (V2, ``/metrics`` with the
agent's series added); everything on the gateway port is the gateway. Both answer with
the scopes their routes declare, checked against this node's tokens. Every admin action,
refused ones included, leaves one line on ``tierwise.audit``
(:mod:`tierwise.security.audit`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tierwise.agent.node import EdgeAgent
from tierwise.errors import HttpError
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
from tierwise.http.routing import Request, Route, RouteTable, audited, authorization_of
from tierwise.router.gateway import Gateway
from tierwise.security import Guard, audit

__all__ = ["AgentApp", "AgentCollector"]

_MAX_CONTROL_BYTES = 4096

log = logging.getLogger("tierwise.agent")


class AgentCollector(Collector):
    """The agent's series, read from its state at scrape time."""

    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        info = GaugeMetricFamily(
            "tierwise_agent_version_info", "The bundle versions this node serves (value 1).",
            labels=["node", "bundle", "version", "digest"],
        )  # fmt: skip
        for name, activator in agent.activators.items():
            active = activator.state.active
            if active is not None:
                info.add_metric([agent.settings.node, name, active.version, active.digest], 1)
        yield info
        yield GaugeMetricFamily(
            "tierwise_agent_ready", "1 when every served model is ready.",
            value=float(agent.serving()),
        )  # fmt: skip
        if agent.thermal.last_celsius is not None:
            yield GaugeMetricFamily(
                "tierwise_agent_temperature_celsius", "Last temperature read.",
                value=agent.thermal.last_celsius,
            )  # fmt: skip
        yield GaugeMetricFamily(
            "tierwise_agent_thermal_throttled", "1 while the thermal guard throttles.",
            value=float(agent.thermal.throttled),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tierwise_agent_queue_depth", "Requests queued on the served models.",
            value=agent.queue_depth(),
        )  # fmt: skip
        if agent.last_sync is not None:
            yield GaugeMetricFamily(
                "tierwise_agent_last_sync_timestamp_seconds", "When the last sync ended.",
                value=agent.last_sync.at_s,
            )  # fmt: skip
        syncs = CounterMetricFamily("tierwise_agent_syncs", "Syncs by result.", labels=["result"])
        for result, count in sorted(agent.sync_counts.items()):
            syncs.add_metric([result], count)
        yield syncs
        yield CounterMetricFamily(
            "tierwise_agent_rollbacks", "Rollbacks done.", value=agent.rollbacks
        )


def _guarded(table: RouteTable, guard: Guard) -> None:
    """Have ``table`` (the gateway's) check its routes' scopes against this node's
    tokens."""
    table.guard = guard if guard.protects else None


def _str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


class AgentApp:
    """One ASGI app for both ports; ``gateway_port`` tells them apart. Every route, the
    agent's, the tier server's and the gateway's, is checked against the node's tokens:
    the guard of the agent's tier server."""

    def __init__(
        self, agent: EdgeAgent, gateway: Gateway | None = None, *, gateway_port: int | None = None
    ) -> None:
        self.agent = agent
        self.guard: Guard = agent.server.guard
        self.gateway = gateway
        self.gateway_port = gateway_port
        agent.server.metrics.registry.register(AgentCollector(agent))
        self.routes = RouteTable(
            [
                Route("/v2/agent/status", self._status, scope="telemetry"),
                Route("/v2/agent/sync", audited("sync", self._sync), methods=["POST"],
                      name="sync", scope="admin"),
                Route("/v2/agent/desired", audited("desired", self._desired),
                      methods=["PUT"], name="desired", scope="admin"),
                Route("/v2/agent/rollback", audited("rollback", self._rollback),
                      methods=["POST"], name="rollback", scope="admin"),
                Route("/v2/agent/{rest:path}", self._no_route, methods=None, scope="admin"),
                Route("/v2/health/ready", self._ready, methods=None),
            ],
            log=log,
            log_server_errors=False,
            guard=self.guard,
        )  # fmt: skip
        self._audited_routes = frozenset(("sync", "desired", "rollback"))
        if gateway is not None:
            _guarded(gateway.routes, self.guard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        server = scope.get("server")
        if self.gateway is not None and server is not None and server[1] == self.gateway_port:
            await self.gateway(scope, receive, send)
        elif self.routes.has_path(scope["path"]):
            status, _ = await self.routes.respond(scope, receive, send)
            if status in (401, 403):
                self._audit_refused(scope, status)
        else:
            await self.agent.server(scope, receive, send)

    async def startup(self) -> None:
        await self.agent.start()
        if self.gateway is not None:
            await self.gateway.startup()

    async def shutdown(self) -> None:
        if self.gateway is not None:
            await self.gateway.shutdown()
        await self.agent.stop()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.startup, self.shutdown)

    def _audit_refused(self, scope: Scope, status: int) -> None:
        """Record an admin action the guard refused, with the client when its token is
        valid (a 403: known client, scope missing)."""
        try:
            route, _ = self.routes.match(scope["method"], scope["path"])
        except HttpError:
            return
        if route.name not in self._audited_routes:
            return
        principal = self.guard.store.authenticate(authorization_of(scope))
        client = None if principal is None else principal.client
        audit.record(route.name, {}, client, status)

    def _only_bundle(self) -> str | None:
        names = self.agent.bundle_names
        return names[0] if len(names) == 1 else None

    async def _json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        _, declared = body_headers(scope)
        return await read_json_object(
            receive, declared, _MAX_CONTROL_BYTES, what="agent request body"
        )

    async def _ready(self, request: Request) -> Reply:
        # a node is ready when it serves its models, not merely when nothing failed
        ready = self.agent.serving()
        return (200 if ready else 503), orjson.dumps({"ready": ready}), list(JSON_HEADERS)

    async def _status(self, request: Request) -> Reply:
        return 200, orjson.dumps(self.agent.status()), list(JSON_HEADERS)

    async def _sync(self, request: Request, details: dict[str, object]) -> Reply:
        result = await self.agent.sync_now()
        details["result"] = result.result
        doc = {"sync": result.to_dict(), "status": self.agent.status()}
        return 200, orjson.dumps(doc), list(JSON_HEADERS)

    async def _desired(self, request: Request, details: dict[str, object]) -> Reply:
        doc = await self._json(request.scope, request.receive)
        ref, bundle, refs = doc.get("ref"), doc.get("bundle"), doc.get("refs")
        if (
            (ref is None) == (refs is None)
            or (ref is not None and not isinstance(ref, str))
            or (bundle is not None and not isinstance(bundle, str))
            or (refs is not None and (bundle is not None or not _str_map(refs)))
        ):
            raise HttpError(
                400,
                'body: expected {"ref": "<version, tag or sha256 digest>", "bundle"?: '
                '"<name>"} or {"refs": {"<bundle>": "<ref>", ...}}',
            )
        if refs is not None:
            details["refs"] = ",".join(f"{name}:{value}" for name, value in refs.items())
        else:
            details["bundle"] = bundle or self._only_bundle()
            details["ref"] = ref
        self.agent.set_desired(ref, bundle=bundle, refs=refs)
        result = await self.agent.sync_now()
        details["result"] = result.result
        doc = {"sync": result.to_dict(), "status": self.agent.status()}
        return 200, orjson.dumps(doc), list(JSON_HEADERS)

    async def _rollback(self, request: Request, details: dict[str, object]) -> Reply:
        agent = self.agent
        doc = await self._json(request.scope, request.receive)
        version, bundle = doc.get("version"), doc.get("bundle")
        if any(v is not None and not isinstance(v, str) for v in (version, bundle)):
            raise HttpError(
                400, 'body: expected {"bundle"?: "<name>", "version"?: "<kept version>"}'
            )
        details["bundle"] = bundle or self._only_bundle()
        if version is not None:
            details["to"] = version
        started = time.monotonic()
        activator = agent.activator(bundle)
        activation = await agent.rollback(version, bundle=activator.bundle)
        details["version"] = activation.version
        doc = {
            "bundle": activator.bundle,
            "rolled_back_to": activation.version,
            "seconds": round(time.monotonic() - started, 3),
            "status": agent.status(),
        }
        return 200, orjson.dumps(doc), list(JSON_HEADERS)

    async def _no_route(self, request: Request) -> Reply:
        raise HttpError(404, f"no agent route {request.path}")
