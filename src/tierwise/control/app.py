"""The control plane's HTTP API (raw ASGI, one route table, one guard).

Agents (scope ``telemetry``):

- ``POST /v1/nodes/{node}/heartbeat``: labels, status and cumulative counters; answered
  once stored with ``{"node", "desired": {"refs": {...}} | null, "heartbeat_s"}``;
- ``GET /v1/nodes/{node}/desired``: ``{"refs": {BUNDLE: REF}}`` with an ETag (304 on
  ``If-None-Match``, and while nothing is desired for the node), the agent's
  ``control.url``.

Operators (reads: ``telemetry``; changes: ``admin``): ``GET /v1/nodes[?selector=...]``,
``GET|DELETE /v1/nodes/{node}``, ``PUT /v1/desired`` (``{bundle, ref, selector}``: set a
version on the nodes outside any rollout), ``POST|GET /v1/rollouts``,
``GET /v1/rollouts/{id}``, ``POST /v1/rollouts/{id}/{pause|resume|promote|abort}``,
``GET /v1/audit[?rollout=&after=&limit=]``, ``GET /metrics``. Health probes
(``/v1/health/live``, ``/v1/health/ready``) are open.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from tierwise.control.desired import DesiredBook
from tierwise.control.engine import RolloutEngine
from tierwise.control.replica import Replica
from tierwise.control.selector import check_labels, parse_selector
from tierwise.control.spec import RolloutRequest
from tierwise.control.store import ControlStore, Heartbeat
from tierwise.control.window import Counters, History
from tierwise.control.writer import HeartbeatWriter
from tierwise.errors import ConfigError, HttpError, RolloutError
from tierwise.http.asgi import (
    JSON_HEADERS,
    Receive,
    Reply,
    Scope,
    Send,
    body_headers,
    header_of,
    read_json_object,
    run_lifespan,
)
from tierwise.http.routing import Request, Route, RouteTable, audited
from tierwise.outbox.nats_settings import NatsTelemetrySettings
from tierwise.security import Guard

if TYPE_CHECKING:
    from tierwise.control.nats_intake import NatsHeartbeatIntake

__all__ = ["ControlApp", "NODE_NAME"]

log = logging.getLogger("tierwise.control")

NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: status fields of a heartbeat the control plane keeps (the rest is ignored)
_STATUS_KEYS = (
    "bundles",
    "health",
    "temperature_c",
    "thermal_throttled",
    "queue_depth",
    "in_flight",
    "last_sync",
    "version",
    "digest",
)
_ACTIONS = ("pause", "resume", "promote", "abort")
#: Most bundles one node may run (as an agent's settings allow).
_MAX_BUNDLES = 64


def _json(doc: object, status: int = 200) -> Reply:
    return status, orjson.dumps(doc), list(JSON_HEADERS)


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _node(request: Request) -> str:
    node = request.params["node"]
    if not NODE_NAME.match(node):
        raise ConfigError("node", "a node name of letters, digits, '.', '_' or '-'", node)
    return node


class ControlApp:
    """The ASGI app; ``startup`` starts the heartbeat writer, the rollout stepper and,
    with ``telemetry``, the consumer of heartbeats published through NATS."""

    def __init__(
        self,
        *,
        store: ControlStore,
        engine: RolloutEngine,
        history: History,
        desired: DesiredBook,
        guard: Guard,
        heartbeat_s: float,
        tick_s: float,
        lease_s: float,
        replica: str,
        max_body_bytes: int,
        max_pending_heartbeats: int,
        max_nodes: int,
        telemetry: NatsTelemetrySettings | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.history = history
        self.desired = desired
        self.guard = guard
        self.heartbeat_s = heartbeat_s
        self.replica = Replica(store, engine, history, desired, name=replica, tick_s=tick_s,
                               lease_s=lease_s)  # fmt: skip
        self.max_body_bytes = max_body_bytes
        self.max_nodes = max_nodes
        self.writer = HeartbeatWriter(store, max_pending=max_pending_heartbeats)
        self.on_shutdown = on_shutdown
        self.heartbeats = 0
        self.known: set[str] = {n.node for n in store.list_nodes()}
        #: heartbeats taken from NATS as well (an agent's ``control.telemetry``)
        self.intake: NatsHeartbeatIntake | None = None
        if telemetry is not None:
            from tierwise.control.nats_intake import NatsHeartbeatIntake  # loads nats-py

            self.intake = NatsHeartbeatIntake(
                telemetry, self.ingest, lambda node: NODE_NAME.match(node) is not None
            )
        self.routes = RouteTable(
            [
                Route("/v1/health/live", self._live),
                Route("/v1/health/ready", self._ready),
                Route(
                    "/v1/nodes/{node}/heartbeat",
                    self._heartbeat,
                    methods=["POST"],
                    scope="telemetry",
                ),
                Route("/v1/nodes/{node}/desired", self._desired_of, scope="telemetry"),
                Route("/v1/nodes", self._nodes, scope="telemetry"),
                Route("/v1/nodes/{node}", self._node_get, scope="telemetry"),
                Route(
                    "/v1/nodes/{node}",
                    audited("node.forget", self._forget),
                    methods=["DELETE"],
                    scope="admin",
                ),
                Route(
                    "/v1/desired",
                    audited("desired.set", self._set_desired),
                    methods=["PUT"],
                    scope="admin",
                ),
                Route("/v1/rollouts", self._rollouts, scope="telemetry"),
                Route(
                    "/v1/rollouts",
                    audited("rollout.start", self._start),
                    methods=["POST"],
                    scope="admin",
                ),
                Route("/v1/rollouts/{id}", self._rollout, scope="telemetry"),
                Route(
                    "/v1/rollouts/{id}/{action}",
                    audited("rollout.action", self._act),
                    methods=["POST"],
                    scope="admin",
                ),
                Route("/v1/audit", self._audit, scope="telemetry"),
                Route("/metrics", self._metrics, scope="telemetry"),
            ],
            log=log,
            guard=guard,
            not_found_hint="the control plane answers /v1/...",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self.startup, self.shutdown)
        elif scope["type"] == "http":
            await self.routes.respond(scope, receive, send)

    # -- lifecycle -------------------------------------------------------------------

    async def startup(self) -> None:
        if self.intake is not None:  # first: a hub it cannot reach fails the start cleanly
            await self.intake.start()
        self.writer.start()
        self.replica.start()

    async def shutdown(self) -> None:
        if self.intake is not None:
            await self.intake.stop()
        await self.replica.stop()
        await self.writer.stop()
        if self.on_shutdown is not None:
            self.on_shutdown()

    @property
    def leader(self) -> bool:
        """Whether this replica holds the rollout lease."""
        return self.replica.leader

    # -- agents ----------------------------------------------------------------------

    async def _heartbeat(self, request: Request) -> Reply:
        node = _node(request)
        _, declared = body_headers(request.scope)
        doc = await read_json_object(
            request.receive, declared, self.max_body_bytes, what="heartbeat"
        )
        await self.ingest(node, doc, time.time())
        return _json(
            {
                "node": node,
                "desired": self.desired.document(node),
                "heartbeat_s": self.replica.watched.get(node, self.heartbeat_s),
            }
        )

    async def ingest(self, node: str, doc: dict[str, Any], at_s: float) -> None:
        """Take ``node``'s heartbeat ``doc`` as of ``at_s`` (returns once it is stored);
        ConfigError or RolloutError (4xx) for one that cannot be taken."""
        if node not in self.known and len(self.known) >= self.max_nodes:
            raise RolloutError(f"the control plane already tracks {self.max_nodes} nodes")
        labels = check_labels(doc.get("labels") or {}, "labels")
        status = doc.get("status") or {}
        if not isinstance(status, dict):
            raise ConfigError("status", "a JSON object", type(status).__name__)
        raw = doc.get("counters") or {}
        if not isinstance(raw, dict):
            raise ConfigError("counters", "a mapping {BUNDLE: counters}", type(raw).__name__)
        found = status.get("bundles")
        runs: dict[str, Any] = found if isinstance(found, dict) else {}
        if len(runs) > _MAX_BUNDLES:
            raise ConfigError("status.bundles", f"at most {_MAX_BUNDLES} bundles", len(runs))
        # counters of bundles the node says it runs; no other name can fill the history
        counters = {
            str(b): Counters.from_doc(c, f"counters.{b}") for b, c in raw.items() if b in runs
        }
        kept: dict[str, Any] = {k: status[k] for k in _STATUS_KEYS if k in status}
        for key in ("address", "gateway_address"):
            if isinstance(doc.get(key), str):
                kept[key] = doc[key][:256]
        kept["counters"] = {b: c.to_doc() for b, c in counters.items()}
        await self.writer.submit(Heartbeat(node, labels, kept, at_s))
        self.known.add(node)
        for bundle, value in counters.items():
            self.history.add(node, bundle, at_s, value)
        self.heartbeats += 1

    async def _desired_of(self, request: Request) -> Reply:
        """The node's desired versions with their ETag; 304 when unchanged since the
        ETag the node sent, and also while nothing is desired for it yet (an agent
        keeps what it has on a 304)."""
        node = _node(request)
        document = self.desired.document(node)
        if document is None:
            return 304, b"", []
        etag = self.desired.etag(document)
        headers = [*JSON_HEADERS, (b"etag", etag.encode())]
        if header_of(request.scope, b"if-none-match") == etag.encode("latin-1"):
            return 304, b"", headers
        return 200, orjson.dumps(document), headers

    # -- nodes -----------------------------------------------------------------------

    def _node_doc(self, view: Any) -> dict[str, Any]:
        record = view.record
        status = {k: v for k, v in record.status.items() if k != "counters"}
        return {
            "node": record.node,
            "labels": record.labels,
            "alive": view.alive,
            "last_seen_s": record.last_seen_s,
            "registered_s": record.registered_s,
            "desired": self.desired.of(record.node),
            "status": status,
        }

    async def _nodes(self, request: Request) -> Reply:
        selector = parse_selector(_query(request.scope).get("selector", ""))
        fleet = await asyncio.to_thread(self.engine.fleet)
        nodes = [self._node_doc(v) for v in fleet.nodes.values() if selector.matches(v.labels)]
        return _json({"nodes": sorted(nodes, key=lambda n: n["node"]), "count": len(nodes)})

    async def _node_get(self, request: Request) -> Reply:
        node = _node(request)
        view = (await asyncio.to_thread(self.engine.fleet)).get(node)
        if view is None:
            raise HttpError(404, f"no node {node} has sent a heartbeat")
        return _json(self._node_doc(view))

    async def _forget(self, request: Request, details: dict[str, object]) -> Reply:
        node = _node(request)
        details["node"] = node
        if not await asyncio.to_thread(self.store.forget_node, node):
            raise HttpError(404, f"no node {node} has sent a heartbeat")
        self.known.discard(node)
        self.history.forget(node)
        self.desired.forget(node)
        return _json({"forgotten": node})

    async def _set_desired(self, request: Request, details: dict[str, object]) -> Reply:
        doc = await self._body(request)
        bundle, ref, text = doc.get("bundle"), doc.get("ref"), doc.get("selector", "")
        if not all(isinstance(v, str) for v in (bundle, ref, text)):
            raise HttpError(400, 'body: expected {"bundle", "ref", "selector"?} as strings')
        details.update(bundle=bundle, ref=ref, selector=text)
        done = await asyncio.to_thread(
            self.engine.set_desired, str(bundle), str(ref), str(text), request.client or "-"
        )
        return _json(done)

    # -- rollouts --------------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any]:
        _, declared = body_headers(request.scope)
        return await read_json_object(
            request.receive, declared, self.max_body_bytes, what="request body"
        )

    async def _start(self, request: Request, details: dict[str, object]) -> Reply:
        spec = RolloutRequest.from_doc(await self._body(request))
        details.update(bundle=spec.bundle, ref=spec.ref, selector=spec.selector)
        rollout = await asyncio.to_thread(self.engine.start, spec, request.client or "-")
        details["rollout"] = rollout.id
        return _json(rollout.to_doc(), 201)

    async def _rollouts(self, request: Request) -> Reply:
        query = _query(request.scope)
        rows = await asyncio.to_thread(
            self.store.list_rollouts,
            active_only=query.get("active") in ("1", "true"),
            bundle=query.get("bundle") or None,
        )
        return _json({"rollouts": [r.doc for r in rows]})

    async def _rollout(self, request: Request) -> Reply:
        rollout = await asyncio.to_thread(self.engine.get, request.params["id"])
        return _json(rollout.to_doc())

    async def _act(self, request: Request, details: dict[str, object]) -> Reply:
        rollout_id, action = request.params["id"], request.params["action"]
        details.update(rollout=rollout_id, action=action)
        if action not in _ACTIONS:
            raise HttpError(404, f"no rollout action {action!r}; expected one of {_ACTIONS}")
        doc = await self._body(request)
        actor = request.client or "-"
        engine = self.engine
        if action == "abort":
            reason = doc.get("reason")
            reason = reason if isinstance(reason, str) and reason else None
            rollout = await asyncio.to_thread(engine.abort, rollout_id, actor, reason)
        else:
            act = {"pause": engine.pause, "resume": engine.resume, "promote": engine.promote}
            rollout = await asyncio.to_thread(act[action], rollout_id, actor)
        return _json(rollout.to_doc())

    async def _audit(self, request: Request) -> Reply:
        query = _query(request.scope)
        try:
            after = int(query.get("after", "0"))
            limit = min(max(int(query.get("limit", "1000")), 1), 10_000)
        except ValueError:
            raise ConfigError("after, limit", "whole numbers", query) from None
        entries = await asyncio.to_thread(
            self.store.audit, rollout=query.get("rollout") or None, after_seq=after, limit=limit
        )
        return _json({"entries": [e.to_dict() for e in entries]})

    # -- the rest --------------------------------------------------------------------

    async def _live(self, request: Request) -> Reply:
        return _json({"live": True})

    async def _ready(self, request: Request) -> Reply:
        return _json({"ready": True, "leader": self.leader, "store": self.store.kind,
                      "gates": self.engine.source.kind})  # fmt: skip

    async def _metrics(self, request: Request) -> Reply:
        from tierwise.control.metrics import exposition

        text = await asyncio.to_thread(exposition, self)
        return 200, text, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
