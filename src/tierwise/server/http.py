"""The thin HTTP layer: the V2 REST routes of the tier server, declared in a route
table (:mod:`tierwise.http.routing`) and served onto the data plane.

Raw ASGI rather than a framework: on the hot path (``POST .../infer``) the only work done
here is one route lookup (a dict hit once a model's path has been seen), the token check
when tokens are configured, reading the bounded body, decoding, and encoding. Every error
becomes ``{"error": "..."}`` with the status its class carries, in one place (the route
table's error handler).

Scopes: inference, model metadata and readiness, and server metadata (``GET /v2``) need
``infer``; the repository (index, load, unload) needs ``admin``; ``/metrics`` needs
``telemetry``; the health probes are open. Every repository request, allowed or not, is
written to the audit log (:mod:`tierwise.server.audit`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tierwise import __version__
from tierwise.errors import (
    HttpError,
    ModelNotFoundError,
    ProtocolError,
    ServerBusyError,
)
from tierwise.http.asgi import (
    JSON_HEADERS,
    Receive,
    Reply,
    Scope,
    Send,
    body_headers,
    read_body,
    read_json_object,
    response_headers,
)
from tierwise.http.routing import Answered, Request, Route, RouteTable
from tierwise.outbox.idempotency import IdempotencyStore
from tierwise.protocol import (
    InferRequest,
    ModelMetadata,
    ServerMetadata,
    TensorMetadata,
    binary_outputs_requested,
    decode_request,
    encode_response,
)
from tierwise.security import Guard, audit
from tierwise.server.dataplane import DataPlane
from tierwise.server.logs import AccessLog
from tierwise.server.manager import ModelManager, ServedVersion
from tierwise.server.metrics import ServerMetrics
from tierwise.server.settings import ServerSettings

__all__ = ["EXTENSIONS", "HttpFrontend"]

error_log = logging.getLogger("tierwise.server")

#: V2 extensions this server implements, as listed by ``GET /v2``.
EXTENSIONS = ["binary_tensor_data", "model_repository", "parameters"]

_MODEL = "/v2/models/{name}"
_VERSION = "/v2/models/{name}/versions/{version}"
_REPOSITORY = "/v2/repository"


class HttpFrontend:
    """Routes and serves one request; built by ``create_app``."""

    def __init__(
        self,
        settings: ServerSettings,
        manager: ModelManager,
        dataplane: DataPlane,
        metrics: ServerMetrics,
        *,
        guard: Guard | None = None,
        insecure: bool = False,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.manager = manager
        self.dataplane = dataplane
        self.metrics = metrics
        self.limits = settings.codec_limits()
        self.accepting = True
        self.access_log = AccessLog(json_lines=settings.log_json) if settings.access_log else None
        self.idempotency = IdempotencyStore(
            ttl_s=settings.idempotency_ttl_s, max_entries=settings.idempotency_max_entries
        )
        meta = ServerMetadata(settings.server_name, __version__, list(EXTENSIONS)).to_dict()
        if insecure:
            meta["insecure"] = True
        self._server_metadata_body = orjson.dumps(meta)
        post = ["POST"]
        self.routes = RouteTable(
            [
                Route(_MODEL + "/infer", self._infer_endpoint, methods=post, scope="infer"),
                Route(_VERSION + "/infer", self._infer_endpoint, methods=post, scope="infer"),
                Route(_MODEL + "/ready", self._model_ready, scope="infer"),
                Route(_VERSION + "/ready", self._model_ready, scope="infer"),
                Route(_MODEL, self._model_metadata, scope="infer"),
                Route(_VERSION, self._model_metadata, scope="infer"),
                Route("/v2", self._server_metadata, scope="infer"),
                Route("/v2/health/live", self._live),
                Route("/v2/health/ready", self._ready),
                Route(_REPOSITORY + "/index", self._repository_index, methods=post,
                      name="index", scope="admin"),
                Route(_REPOSITORY + "/models/{name}/load", self._load, methods=post,
                      name="load", scope="admin"),
                Route(_REPOSITORY + "/models/{name}/unload", self._unload, methods=post,
                      name="unload", scope="admin"),
                Route(_REPOSITORY + "/{rest:path}", self._no_repository_route, methods=post,
                      name="unknown", scope="admin"),
                Route("/metrics", self._metrics, scope="telemetry"),
            ],
            log=error_log,
            not_found_hint="; see GET /v2 for what is served",
            guard=guard,
            on_answer=self._audit,
        )  # fmt: skip

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        status, size = await self.routes.respond(scope, receive, send, started)
        if self.access_log is not None:
            client = scope.get("client") or ("-", 0)
            self.access_log.record(
                client[0], scope["method"], scope["path"], status, size,
                (time.monotonic() - started) * 1000.0,
            )  # fmt: skip

    def _audit(self, answered: Answered) -> None:
        """The audit line of a repository request, written before its reply is sent."""
        scope = answered.scope
        if not scope["path"].startswith(_REPOSITORY):
            return
        route = answered.route
        peer = scope.get("client")
        audit.record(
            "unknown" if route is None else str(route.name),
            {"model": answered.params.get("name"), "peer": str(peer[0]) if peer else None},
            answered.client,
            answered.status,
        )

    async def _infer_endpoint(self, request: Request) -> Reply:
        params = request.params
        return await self._infer(
            params["name"], params.get("version"), request.scope, request.receive,
            request.started_s,
        )  # fmt: skip

    async def _server_metadata(self, request: Request) -> Reply:
        return 200, self._server_metadata_body, list(JSON_HEADERS)

    async def _live(self, request: Request) -> Reply:
        return 200, orjson.dumps({"live": True}), list(JSON_HEADERS)

    async def _ready(self, request: Request) -> Reply:
        ok = self.accepting and self.manager.all_ready
        return (200 if ok else 503), orjson.dumps({"ready": ok}), list(JSON_HEADERS)

    async def _metrics(self, request: Request) -> Reply:
        body = generate_latest(self.metrics.registry)
        return 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())]

    async def _model_ready(self, request: Request) -> Reply:
        name, version = request.params["name"], request.params.get("version")
        if not self.manager.knows(name):
            raise ModelNotFoundError(model=name, version=version)
        ok = self.manager.is_ready(name, version)
        body = {"name": name, "ready": ok}
        if version is not None:
            body["version"] = version
        return (200 if ok else 503), orjson.dumps(body), list(JSON_HEADERS)

    async def _model_metadata(self, request: Request) -> Reply:
        meta = self._metadata(request.params["name"], request.params.get("version"))
        return 200, orjson.dumps(meta), list(JSON_HEADERS)

    def _metadata(self, name: str, version: str | None) -> dict[str, Any]:
        served = self.manager.resolve(name, version)
        sig = served.backend.signature
        meta = ModelMetadata(
            name=name,
            platform="onnxruntime_onnx",
            versions=[version] if version is not None else self.manager.versions_of(name),
            inputs=[TensorMetadata(t.name, t.datatype, list(t.shape)) for t in sig.inputs],
            outputs=[TensorMetadata(t.name, t.datatype, list(t.shape)) for t in sig.outputs],
            parameters=dict(served.parameters),
        )
        return meta.to_dict()

    async def _infer(
        self, name: str, version: str | None, scope: Scope, receive: Receive, started: float
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if not self.accepting:
            raise ServerBusyError(model=name, queue_size=0, retry_after_s=1, status_code=503)
        header_length, declared = body_headers(scope)
        served = self.dataplane.admit(name, version)  # shed load before reading the body
        try:
            body = await read_body(receive, declared, self.settings.max_body_bytes)
            request = decode_request(body, header_length=header_length, limits=self.limits)
        except ProtocolError:  # counted with the model's other client errors
            served.metrics.requests["client_error"].inc()
            raise
        key = request.parameters.get("idempotency_key") if request.parameters else None
        if isinstance(key, str) and key:
            # a redelivered request (at-least-once senders such as an outbox) is answered
            # from the first run's stored response instead of running again
            stored = await self.idempotency.run_once(
                f"{name}/{version or ''}/{key}",
                lambda: self._run_encoded(served, request, version, started),
            )
            out, response_header_length = _unpack(stored)
        else:
            out, response_header_length = await self._run(served, request, version, started)
        return 200, out, response_headers(response_header_length)

    async def _run(
        self, served: ServedVersion, request: InferRequest, version: str | None, started: float
    ) -> tuple[bytes, int | None]:
        response = await self.dataplane.infer(served, request, version=version, received_s=started)
        return encode_response(response, binary_outputs=binary_outputs_requested(request))

    async def _run_encoded(
        self, served: ServedVersion, request: InferRequest, version: str | None, started: float
    ) -> bytes:
        body, header_length = await self._run(served, request, version, started)
        return _pack(body, header_length)

    async def _repository_options(self, request: Request) -> dict[str, Any]:
        return await read_json_object(
            request.receive, None, self.settings.max_body_bytes, what="repository request body"
        )

    async def _repository_index(self, request: Request) -> Reply:
        options = await self._repository_options(request)
        rows = self.manager.index()
        if options.get("ready") is True:
            rows = [r for r in rows if r["state"] == "READY"]
        return 200, orjson.dumps(rows), list(JSON_HEADERS)

    async def _load(self, request: Request) -> Reply:
        await self._repository_options(request)
        await self.manager.load(request.params["name"])
        return 200, b"{}", list(JSON_HEADERS)

    async def _unload(self, request: Request) -> Reply:
        await self._repository_options(request)
        await self.manager.unload(request.params["name"])
        return 200, b"{}", list(JSON_HEADERS)

    async def _no_repository_route(self, request: Request) -> Reply:
        await self._repository_options(request)
        raise HttpError(404, f"no repository route {request.params['rest']!r}; expected "
                             "index, models/{name}/load or models/{name}/unload")  # fmt: skip


def _pack(body: bytes, header_length: int | None) -> bytes:
    """A stored response: its header length (-1 for JSON) in 8 bytes, then the body."""
    return (-1 if header_length is None else header_length).to_bytes(
        8, "little", signed=True
    ) + body


def _unpack(stored: bytes) -> tuple[bytes, int | None]:
    length = int.from_bytes(stored[:8], "little", signed=True)
    return stored[8:], None if length < 0 else length
