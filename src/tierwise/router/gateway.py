"""``tierwise gateway``: a V2 HTTP front with the router inside, for clients that cannot
embed the SDK. ``POST /v2/models/{workload}/infer`` routes through the workload's
cascade; request ``parameters`` carry ``privacy``, ``residency``, ``deadline_ms``,
``urgency`` (and ``idempotency_key``, ``callback_url`` for deferred work), and V2's
``timeout`` (microseconds, as Triton and the tier server read it) is a deadline too; the
tiers called hear of the time left. Responses carry ``parameters`` with the ``tier`` that
answered, ``degraded`` (with ``degraded_reason`` when true) and ``trace_id``. A request
whose deadline passed before it could be answered gets 408, as from a tier server.
Deferred requests answer 202 with an id to fetch at ``GET /v2/outbox/{id}``.

Access (``auth:``, see :mod:`tierwise.security`): inference, ``GET /v2`` and a workload's
``ready`` need scope ``infer``; ``/metrics`` needs ``telemetry``; ``GET /v2/outbox/{id}``
needs ``infer`` and answers only the client that queued the item, or a token with
``admin`` (others get 404); health probes are open. ``clients:`` sets per-client rate
limits, daily budgets and privacy floors (:mod:`tierwise.router.clients`); ``tls:``
serves HTTPS (and mutual TLS with ``client_ca``).

``/metrics``: ``tierwise_gateway_requests_total{workload,tier,outcome}`` (outcome
``answered``, ``degraded``, ``deferred``, ``no_route``, ``deadline``), the request
duration histogram, ``tierwise_gateway_client_limited_total{client,reason}`` (requests
refused for a client's ``rate`` or ``budget``), the router's series
(:mod:`tierwise.router.metrics`: requests, latency against the SLO, escalations,
fallbacks, degraded answers, hedges, cost, breakers, thermal offload, re-evaluations),
the outbox's backlog (:mod:`tierwise.outbox.metrics`) and the device series fed by
``POST /v2/telemetry/device`` (scope ``telemetry``; :mod:`tierwise.router.device_telemetry`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tierwise import __version__
from tierwise.errors import (
    ConfigError,
    DeadlineExceededError,
    HttpError,
    NoRouteError,
    OutboxError,
    RateLimitedError,
    SpecError,
    TierUnavailableError,
)
from tierwise.http.asgi import (
    JSON_HEADERS,
    Receive,
    Reply,
    Scope,
    Send,
    body_headers,
    read_body,
    response_headers,
    run_lifespan,
)
from tierwise.http.routing import Request, RouteTable
from tierwise.http.routing import Route as HttpRoute
from tierwise.outbox import DeferredQueue, DrainerSettings, open_queue
from tierwise.planfile.schema import Plan
from tierwise.protocol import (
    InferRequest,
    ServerMetadata,
    binary_outputs_requested,
    decode_request,
    encode_response,
)
from tierwise.router.clients import ClientGate, ClientLimits
from tierwise.router.deferred import DEFERRED_TIER, DeferredWork, accepted
from tierwise.router.device_telemetry import DeviceIntake
from tierwise.router.gateway_settings import GatewaySettings, load_gateway_settings
from tierwise.router.meta import GATEWAY_PARAMETERS, meta_from_parameters
from tierwise.router.metrics import RouterCollector
from tierwise.router.once import OnceReplies
from tierwise.router.policy import Policy
from tierwise.router.router import Router
from tierwise.router.types import RequestMeta, Route
from tierwise.security import Guard, check_exposure
from tierwise.webdevice import DevicePage

__all__ = ["DEFERRED_TIER", "Gateway", "GatewaySettings", "load_gateway_settings"]

log = logging.getLogger("tierwise.router")

#: The client of the request being routed (for the outbox item the router may defer).
_CALLER: ContextVar[str | None] = ContextVar("tierwise_gateway_caller", default=None)
#: The request being routed, as the client sent it (what a deferred item keeps).
_REQUEST: ContextVar[InferRequest | None] = ContextVar("tierwise_gateway_request", default=None)


class Gateway:
    """The ASGI app. Lifespan startup loads local models and starts the outbox drainer.

    Tokens are read when it is built (``env`` holds the variables ``auth.tokens_env``
    names; None: the process's). ``clock`` and ``wall_clock`` pace the clients' rate
    limits and date their spend."""

    def __init__(
        self,
        plan: Plan,
        router: Router,
        settings: GatewaySettings,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.router = router
        self.settings = settings
        self.guard = Guard.from_settings(settings.auth, env)
        if settings.clients and not self.guard.protects:
            raise ConfigError(
                "clients", "tokens (auth.tokens_file or auth.tokens_env): limits apply to "
                "callers known by their tokens", sorted(settings.clients),
            )  # fmt: skip
        unknown = sorted(set(settings.clients) - self.guard.store.clients)
        if unknown:
            log.warning("clients %s have limits but no token names them", ", ".join(unknown))
        self.clients = ClientGate(settings.clients, clock=clock, wall_clock=wall_clock)
        #: what ``GET /v2`` and the first log line say when it runs open beyond loopback
        self.insecure_warning = (
            check_exposure(settings.host, tokens=self.guard.protects, insecure=True,
                           mutual_tls=settings.tls is not None and settings.tls.mutual)
            if settings.insecure else None
        )  # fmt: skip
        outbox = settings.outbox_settings()
        #: the outbox (SQLite or JetStream) deferred requests wait in
        self.queue: DeferredQueue | None = (
            open_queue(outbox, DrainerSettings(poll_s=settings.drain_poll_s))
            if outbox is not None
            else None
        )
        #: deferred requests: queued in the outbox, delivered through the router later
        self.deferred = (
            DeferredWork(self.queue, router, self.clients) if self.queue is not None else None
        )
        if self.deferred is not None:  # policy holds and requests no tier can take now
            router.set_defer(self._defer, self._deferrable)
        else:
            router.set_defer(None)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tierwise_gateway_requests", "Routed requests by workload, answering tier, outcome.",
            ["workload", "tier", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "tierwise_gateway_request_duration_seconds", "Routed request time, all tiers.",
            ["workload"], registry=self.registry,
        )  # fmt: skip
        self.limited = Counter(
            "tierwise_gateway_client_limited", "Requests refused for a client's limits.",
            ["client", "reason"], registry=self.registry,
        )  # fmt: skip
        self.registry.register(RouterCollector(router))
        collector = self.queue.collector() if self.queue is not None else None
        if collector is not None:
            self.registry.register(collector)
        #: device reports (``POST /v2/telemetry/device``) and their series
        self.device = DeviceIntake(plan, settings.device_telemetry)
        self.registry.register(self.device.telemetry)
        #: the device tier for browsers (None: ``device_page: false``)
        self.device_page = (
            DevicePage(
                plan,
                Policy(plan).skips,
                bundles=settings.device_bundles,
                samples=settings.device_samples,
            )
            if settings.device_page
            else None
        )
        #: answers by idempotency key
        self.once = OnceReplies(
            settings.idempotency_path,
            ttl_s=settings.idempotency_ttl_s,
            max_entries=settings.idempotency_max_entries,
        )
        #: a plan mistake found at startup (the lifespan reports it as a failed start)
        self.startup_error: ConfigError | SpecError | OutboxError | None = None
        self.routes = RouteTable(
            [
                HttpRoute(
                    "/v2/models/{workload}/infer", self._infer_endpoint, methods=["POST"],
                    scope="infer",
                ),
                HttpRoute("/v2/models/{workload}/ready", self._model_ready, scope="infer"),
                HttpRoute("/v2/outbox/{item_id}", self._outbox_endpoint, scope="infer"),
                HttpRoute("/v2/health/live", self._live),
                HttpRoute("/v2/health/ready", self._ready),
                HttpRoute("/v2", self._metadata, scope="infer"),
                HttpRoute("/metrics", self._metrics, scope="telemetry"),
                self.device.route(),
                *(self.device_page.routes() if self.device_page is not None else ()),
            ],
            log=log,
            log_server_errors=False,
            guard=self.guard,
        )  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self.routes.respond(scope, receive, send)

    async def startup(self) -> None:
        """Load local models, check every stage's score output against its tier's model
        (ConfigError for a plan mistake; see :mod:`tierwise.router.score_outputs`) and
        start the outbox drainer (the lifespan's startup; call it yourself when the
        gateway is mounted in another app)."""
        await self.router.start()
        if self.device_page is not None:
            self.device_page.check()
        if self.queue is not None and self.deferred is not None:
            await self.queue.start(DEFERRED_TIER, self.deferred.deliver, lambda: True)

    async def shutdown(self) -> None:
        if self.queue is not None:
            await self.queue.stop()
        await self.router.close()
        self.once.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await self.startup()
            except Exception as exc:
                if isinstance(exc, ConfigError | SpecError | OutboxError):
                    # a plan mistake (a stage's score output the model cannot give) or an
                    # outbox it cannot reach: kept for the CLI to report in one line,
                    # logged without a traceback
                    self.startup_error = exc
                    log.error("the gateway cannot start: %s", exc)
                else:
                    log.exception("startup failed")
                await self.router.close()  # what started before the failure
                if self.queue is not None:
                    await self.queue.stop()
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        await run_lifespan(receive, send, _started, self.shutdown)

    async def _live(self, request: Request) -> Reply:
        return 200, orjson.dumps({"live": True}), list(JSON_HEADERS)

    async def _ready(self, request: Request) -> Reply:
        return 200, orjson.dumps({"ready": True}), list(JSON_HEADERS)

    async def _metadata(self, request: Request) -> Reply:
        meta = ServerMetadata("tierwise-gateway", __version__, ["binary_tensor_data"])
        doc = meta.to_dict()
        if self.insecure_warning is not None:
            doc["insecure"] = True
        return 200, orjson.dumps(doc), list(JSON_HEADERS)

    async def _model_ready(self, request: Request) -> Reply:
        workload = request.params["workload"]
        self._known_workload(workload)
        return 200, orjson.dumps({"name": workload, "ready": True}), list(JSON_HEADERS)

    async def _metrics(self, request: Request) -> Reply:
        return 200, generate_latest(self.registry), [(b"content-type", b"text/plain")]

    async def _infer_endpoint(self, request: Request) -> Reply:
        return await self._infer(
            request.params["workload"], request.scope, request.receive, request.client
        )

    async def _outbox_endpoint(self, request: Request) -> Reply:
        if self.deferred is None:
            raise HttpError(404, "this gateway has no outbox (start it with --outbox PATH)")
        return await self.deferred.item(request.params["item_id"], request.principal)

    async def _defer(self, request: InferRequest, meta: RequestMeta, route: Route) -> str:
        if self.deferred is None:
            raise TierUnavailableError("no outbox configured for deferred work", tier="outbox")
        original = _REQUEST.get()
        if route.defer_until_s is None:  # no tier could take it: queued as the client sent it
            request = original or request
        elif original is not None and "idempotency_key" in original.parameters:
            # held by the policy: queued without its deadline, with its key
            key = original.parameters["idempotency_key"]
            request = replace(request, parameters={**request.parameters, "idempotency_key": key})
        return await self.deferred.enqueue(
            request, meta, not_before_s=route.defer_until_s, client=_CALLER.get()
        )

    def _admit(self, client: str | None) -> ClientLimits | None:
        try:
            return self.clients.admit(client)
        except RateLimitedError:
            self.limited.labels(client, "rate").inc()
            raise

    def _apply(self, client: str, limits: ClientLimits, meta: RequestMeta) -> RequestMeta:
        try:
            return self.clients.apply(client, limits, meta)
        except RateLimitedError:
            self.limited.labels(client, "budget").inc()
            raise

    async def _infer(
        self, workload: str, scope: Scope, receive: Receive, client: str | None = None
    ) -> tuple[int, bytes, list[Any]]:
        started = time.monotonic()
        received_s = time.time()  # deadlines count from arrival, body reading included
        limits = self._admit(client) if self.clients else None  # before reading the body
        header_length, declared = body_headers(scope)
        body = await read_body(receive, declared, self.settings.max_body_bytes)
        request = decode_request(body, header_length=header_length)
        key = request.parameters.get("idempotency_key")
        if key is None:
            return await self._route(workload, request, received_s, started, limits, client)
        return await self.once.run(
            f"{client or ''}\0{workload}", key, body,
            lambda: self._route(workload, request, received_s, started, limits, client),
        )  # fmt: skip

    async def _route(
        self,
        workload: str,
        request: InferRequest,
        received_s: float,
        started: float,
        limits: ClientLimits | None,
        client: str | None,
    ) -> Reply:
        meta = meta_from_parameters(
            request.parameters, default_workload=workload, received_s=received_s
        )
        self._known_workload(meta.workload)
        if limits is not None and client is not None:
            meta = self._apply(client, limits, meta)
        _CALLER.set(client)
        _REQUEST.set(request)
        forwarded = InferRequest(
            inputs=request.inputs,
            id=request.id,
            parameters={k: v for k, v in request.parameters.items() if k not in GATEWAY_PARAMETERS},
            outputs=request.outputs,
            input_parameters=request.input_parameters,
        )
        try:
            answer = await self.router.infer(forwarded, meta)
            if limits is not None:
                self.clients.charge(client, answer.cost_usd)
        except DeadlineExceededError:
            self.requests.labels(meta.workload, "-", "deadline").inc()
            raise
        except NoRouteError:  # one the outbox could take was queued by the router
            self.requests.labels(meta.workload, "-", "no_route").inc()
            raise
        finally:
            self.latency.labels(meta.workload).observe(time.monotonic() - started)
        if answer.deferred_id is not None:
            self.requests.labels(meta.workload, "-", "deferred").inc()
            return accepted(answer.deferred_id, answer.reason)
        response = answer.response
        if response is None:  # a routed answer always carries one unless deferred
            raise NoRouteError(meta.workload, [])
        outcome = "degraded" if answer.degraded else "answered"
        self.requests.labels(meta.workload, answer.answered_by or "-", outcome).inc()
        # clients asked for the workload as a model: the answer names it, and says in its
        # parameters which tier's model answered
        response = replace(
            response,
            model_name=meta.workload,
            model_version=None,
            parameters={
                **response.parameters,
                "model": response.model_name,
                "trace_id": answer.trace_id,
            },
        )
        out, length = encode_response(response, binary_outputs=binary_outputs_requested(request))
        return 200, out, response_headers(length)

    def _known_workload(self, workload: str) -> None:
        """404 for a workload the plan does not have: to V2 clients it is a model."""
        if workload not in self.plan.workloads:
            known = ", ".join(sorted(self.plan.workloads))
            raise HttpError(404, f"unknown workload {workload!r}; the plan has {known}")

    def _deferrable(self, meta: RequestMeta) -> bool:
        if meta.urgency is not None:
            return meta.urgency == "deferrable"
        workload = self.plan.workloads.get(meta.workload)
        return workload is not None and workload.urgency == "deferrable"


async def _started() -> None:
    """The lifespan's startup once :meth:`Gateway._lifespan` has run it."""
