"""The thin HTTP layer: a raw ASGI app that routes V2 REST calls onto the data plane.

Raw ASGI rather than a framework: on the hot path (``POST .../infer``) the only work done
here is reading the bounded body, decoding, and encoding. Every error becomes
``{"error": "..."}`` with the status its class carries, in one place (:func:`error_body`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tierwise import __version__
from tierwise.errors import (
    ModelNotFoundError,
    ProtocolError,
    ServerBusyError,
    TierwiseError,
)
from tierwise.protocol import (
    InferRequest,
    ModelMetadata,
    ServerMetadata,
    TensorMetadata,
    binary_outputs_requested,
    decode_request,
    encode_response,
)
from tierwise.server.asgi import (
    JSON_HEADERS,
    HttpError,
    Receive,
    Scope,
    Send,
    allow,
    body_headers,
    error_body,
    read_body,
    read_json_object,
    response_headers,
    send_response,
)
from tierwise.server.dataplane import DataPlane
from tierwise.server.idempotency import IdempotencyStore
from tierwise.server.logs import AccessLog
from tierwise.server.manager import ModelManager, ServedVersion
from tierwise.server.metrics import ServerMetrics
from tierwise.server.settings import ServerSettings

__all__ = ["EXTENSIONS", "HttpFrontend"]

error_log = logging.getLogger("tierwise.server")

#: V2 extensions this server implements, as listed by ``GET /v2``.
EXTENSIONS = ["binary_tensor_data", "model_repository", "parameters"]


class HttpFrontend:
    """Routes and serves one request; built by ``create_app``."""

    def __init__(
        self,
        settings: ServerSettings,
        manager: ModelManager,
        dataplane: DataPlane,
        metrics: ServerMetrics,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.dataplane = dataplane
        self.metrics = metrics
        self.limits = settings.codec_limits()
        self.accepting = True
        self.access_log = AccessLog(json_lines=settings.log_json) if settings.access_log else None
        self.idempotency = IdempotencyStore(
            ttl_s=settings.idempotency_ttl_s, max_entries=settings.idempotency_max_entries
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        method: str = scope["method"]
        path: str = scope["path"]
        status = 500
        size = 0
        try:
            target = _infer_target(method, path)
            if target is not None:  # the hot path skips the general router
                status, body, headers = await self._infer(*target, scope, receive, started)
            else:
                status, body, headers = await self._route(method, path, scope, receive, started)
        except Exception as exc:
            status, body, headers = error_body(exc)
            if status >= 500 and not isinstance(exc, TierwiseError | ServerBusyError):
                error_log.exception("unhandled error on %s %s", method, path)
            elif status >= 500:
                error_log.error("%s %s: %s", method, path, exc)
            headers = headers + JSON_HEADERS
        size = len(body)
        await send_response(send, status, body, headers)
        if self.access_log is not None:
            client = scope.get("client") or ("-", 0)
            self.access_log.record(
                client[0], method, path, status, size, (time.monotonic() - started) * 1000.0
            )

    async def _route(
        self, method: str, path: str, scope: Scope, receive: Receive, started: float
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        parts = path.strip("/").split("/")
        if parts[0] == "v2":
            if len(parts) >= 3 and parts[1] == "models":
                return await self._model_route(method, parts[2:], scope, receive, started)
            if len(parts) == 3 and parts[1] == "health" and parts[2] in ("live", "ready"):
                allow(method, "GET")
                return self._health(parts[2])
            if len(parts) == 1:
                allow(method, "GET")
                meta = ServerMetadata(self.settings.server_name, __version__, list(EXTENSIONS))
                return 200, orjson.dumps(meta.to_dict()), list(JSON_HEADERS)
            if len(parts) >= 3 and parts[1] == "repository":
                return await self._repository(method, parts[2:], receive)
        elif path == "/metrics":
            allow(method, "GET")
            return (
                200,
                generate_latest(self.metrics.registry),
                [(b"content-type", CONTENT_TYPE_LATEST.encode())],
            )
        raise HttpError(404, f"no route for {method} {path}; see GET /v2 for what is served")

    def _health(self, which: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if which == "live":
            ok = True
            body = {"live": True}
        else:
            ok = self.accepting and self.manager.all_ready
            body = {"ready": ok}
        return (200 if ok else 503), orjson.dumps(body), list(JSON_HEADERS)

    async def _model_route(
        self, method: str, rest: list[str], scope: Scope, receive: Receive, started: float
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        name, version, action = rest[0], None, ""
        tail = rest[1:]
        if len(tail) >= 2 and tail[0] == "versions":
            version, tail = tail[1], tail[2:]
        if len(tail) > 1:
            raise HttpError(404, f"no route for {method} {scope['path']}")
        action = tail[0] if tail else ""
        if action == "infer":
            allow(method, "POST")
            return await self._infer(name, version, scope, receive, started)
        if action == "ready":
            allow(method, "GET")
            if not self.manager.knows(name):
                raise ModelNotFoundError(model=name, version=version)
            ok = self.manager.is_ready(name, version)
            body = {"name": name, "ready": ok}
            if version is not None:
                body["version"] = version
            return (200 if ok else 503), orjson.dumps(body), list(JSON_HEADERS)
        if action == "":
            allow(method, "GET")
            return 200, orjson.dumps(self._metadata(name, version)), list(JSON_HEADERS)
        raise HttpError(404, f"no route for {method} {scope['path']}")

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

    async def _repository(
        self, method: str, rest: list[str], receive: Receive
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        allow(method, "POST")
        options = await read_json_object(
            receive, None, self.settings.max_body_bytes, what="repository request body"
        )
        if rest == ["index"]:
            rows = self.manager.index()
            if options.get("ready") is True:
                rows = [r for r in rows if r["state"] == "READY"]
            return 200, orjson.dumps(rows), list(JSON_HEADERS)
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            if rest[2] == "load":
                await self.manager.load(rest[1])
            else:
                await self.manager.unload(rest[1])
            return 200, b"{}", list(JSON_HEADERS)
        raise HttpError(404, f"no repository route {'/'.join(rest)!r}; expected index, "
                              "models/{name}/load or models/{name}/unload")  # fmt: skip


def _infer_target(method: str, path: str) -> tuple[str, str | None] | None:
    """(model, version) for ``POST /v2/models/{m}[/versions/{v}]/infer``, else None."""
    if method != "POST":
        return None
    target = _TARGETS.get(path)
    if target is None:
        if not path.endswith("/infer") or not path.startswith("/v2/models/"):
            return None
        parts = path[11:-6].split("/")
        if len(parts) == 1 and parts[0]:
            target = (parts[0], None)
        elif len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            target = (parts[0], parts[2])
        else:
            return None
        if len(_TARGETS) < _MAX_TARGETS:  # bounded: paths come from clients
            _TARGETS[path] = target
    return target


_TARGETS: dict[str, tuple[str, str | None]] = {}
_MAX_TARGETS = 4096


def _pack(body: bytes, header_length: int | None) -> bytes:
    """A stored response: its header length (-1 for JSON) in 8 bytes, then the body."""
    return (-1 if header_length is None else header_length).to_bytes(
        8, "little", signed=True
    ) + body


def _unpack(stored: bytes) -> tuple[bytes, int | None]:
    length = int.from_bytes(stored[:8], "little", signed=True)
    return stored[8:], None if length < 0 else length
