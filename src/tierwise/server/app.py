"""``create_app(settings)``: the tier server as an ASGI application, and running it.

The guard (who may call which route) is built once, from ``settings.auth``, when the app
is made. :func:`serve` refuses to start a server bound beyond loopback with neither
tokens nor mutual TLS unless ``settings.insecure`` says so, and then logs the warning
before anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from tierwise.http.asgi import Receive, Scope, Send, run_lifespan
from tierwise.security import Guard, TlsServerSettings, check_exposure
from tierwise.server.dataplane import DataPlane
from tierwise.server.http import HttpFrontend
from tierwise.server.manager import BackendFactory, ModelManager, registry_backend
from tierwise.server.metrics import ServerMetrics
from tierwise.server.settings import ServerSettings
from tierwise.telemetry.energy import EnergyMeter, RaplReader

__all__ = [
    "TierServer",
    "create_app",
    "energy_meter",
    "exposure_warning",
    "serve",
    "uvicorn_server",
]

log = logging.getLogger("tierwise.server")


def energy_meter(settings: ServerSettings) -> EnergyMeter | None:
    """The meter of the server's busy time and energy: None when ``settings.metrics`` is
    off; busy time only when energy is off or there is neither a readable RAPL counter
    nor a power model (see :class:`~tierwise.server.settings.EnergySettings`)."""
    if not settings.metrics:
        return None
    energy = settings.energy
    if not energy.enabled:
        return EnergyMeter()
    root = energy.rapl_root()
    rapl = RaplReader(root) if root is not None else None
    return EnergyMeter(power=energy.power_model(), rapl=rapl, window_s=energy.window_s)


def _log_energy(settings: ServerSettings, meter: EnergyMeter | None) -> None:
    """Say at startup how the server accounts energy (after any ConfigError of the
    settings, so a refused start stays one line)."""
    energy = settings.energy
    if meter is None or not energy.enabled:
        return
    root = energy.rapl_root()
    if root is not None and meter.source != "measured" and energy.rapl != "auto":
        log.warning("energy: no readable RAPL counter under %s", root)
    if meter.source == "measured":
        log.info("energy of tier %s: measured by RAPL under %s", settings.tier, root)
    elif meter.source == "estimated":
        log.info("energy of tier %s: estimated from the power model", settings.tier)
    else:
        log.info(
            "energy of tier %s: not accounted (no RAPL counter, no power model); busy "
            "time only", settings.tier,
        )  # fmt: skip


class TierServer:
    """The ASGI application. Lifespan startup loads the repository; shutdown stops taking
    inference requests, drains every queue and unloads the models."""

    def __init__(
        self, settings: ServerSettings, backend_factory: BackendFactory, guard: Guard
    ) -> None:
        self.settings = settings
        self.guard = guard
        # the server runs unguarded beyond loopback only when told to; it says so in /v2
        unguarded = exposure_warning(settings, guard, insecure=True) is not None
        self.insecure = settings.insecure and unguarded
        self.metrics = ServerMetrics(tier=settings.tier, energy=energy_meter(settings))
        self.manager = ModelManager(settings, self.metrics, backend_factory)
        self.dataplane = DataPlane(self.manager, self.metrics)
        self.http = HttpFrontend(
            settings, self.manager, self.dataplane, self.metrics,
            guard=guard, insecure=self.insecure,
        )  # fmt: skip
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def startup(self) -> None:
        _log_energy(self.settings, self.metrics.energy)
        await self.manager.start()
        if self.http.access_log is not None:
            self._flusher = asyncio.get_running_loop().create_task(self.http.access_log.run())
        rows = self.manager.index()
        ready = [r for r in rows if r["state"] == "READY"]
        log.info(
            "serving %s from %s",
            ", ".join(f"{r['name']}:{r['version']}" for r in ready) or "no models",
            self.settings.model_repo,
        )
        down = sorted({r["name"] for r in rows} - {r["name"] for r in ready})
        if down:
            log.warning("unavailable: %s (reasons in POST /v2/repository/index)", ", ".join(down))

    async def shutdown(self) -> None:
        self.http.accepting = False
        await self.manager.close()
        self.http.idempotency.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.startup, self.shutdown)


def create_app(
    settings: ServerSettings,
    *,
    backend_factory: BackendFactory = registry_backend,
    guard: Guard | None = None,
    env: Mapping[str, str] | None = None,
) -> TierServer:
    """Build the tier server for ``settings``; run it with any ASGI server (uvicorn).

    ``guard`` checks callers; without one it is built from ``settings.auth``, reading the
    tokens file and the variables of ``env`` (default: the process environment) now, so
    a bad tokens file fails here with a ConfigError naming its line.
    """
    if guard is None:
        guard = Guard.from_settings(settings.auth, env)
    return TierServer(settings, backend_factory, guard)


def exposure_warning(
    settings: ServerSettings, guard: Guard, *, insecure: bool | None = None
) -> str | None:
    """The line to log first when the server runs unguarded beyond loopback because
    ``settings.insecure`` (or ``insecure``, when given) says so; None when it is guarded
    or on loopback; ConfigError, naming the ways out, when it would run unguarded
    without being told to."""
    mutual = settings.tls is not None and settings.tls.mutual
    return check_exposure(
        settings.host,
        tokens=guard.protects,
        mutual_tls=mutual,
        insecure=settings.insecure if insecure is None else insecure,
    )


def uvicorn_server(
    app: Any,
    *,
    drain_timeout_s: float = 0.0,
    tls: TlsServerSettings | None = None,
    **options: Any,
) -> Any:
    """A uvicorn server for any tierwise ASGI app, set up the one way they all run: uvloop
    and httptools, the app's own lifespan, tierwise's logs instead of uvicorn's access log,
    no proxy headers, and ``drain_timeout_s`` to finish in-flight requests at shutdown.
    ``tls`` serves HTTPS (mutual TLS with its ``client_ca``); its files are loaded here,
    so a bad one is a ConfigError before the port opens."""
    import uvicorn

    if tls is not None:
        options = {**tls.uvicorn_options(), **options}

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(drain_timeout_s) or None,
        **options,
    )
    return uvicorn.Server(config)


def serve(
    settings: ServerSettings, *, env: Mapping[str, str] | None = None, **uvicorn_options: Any
) -> bool:
    """Run the server on uvicorn (uvloop and httptools) until SIGINT/SIGTERM, then drain.
    False when it never started (a ``strict`` start with a model that failed, a port in
    use); the caller decides the exit status. ConfigError, before the port opens, when
    it may not start: unguarded beyond loopback, or a tokens or TLS file that does not
    load. ``env`` holds the variables ``settings.auth.tokens_env`` names (default: the
    process environment)."""
    guard = Guard.from_settings(settings.auth, env)
    warning = exposure_warning(settings, guard)
    if warning is not None:
        log.warning("%s", warning)
    app = create_app(settings, guard=guard)
    server = uvicorn_server(
        app, host=settings.host, port=settings.port, tls=settings.tls,
        drain_timeout_s=settings.drain_timeout_s, **uvicorn_options,
    )  # fmt: skip
    server.run()
    return bool(server.started)
