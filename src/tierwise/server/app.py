"""``create_app(settings)``: the tier server as an ASGI application, and running it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tierwise.http.asgi import Receive, Scope, Send, run_lifespan
from tierwise.server.dataplane import DataPlane
from tierwise.server.http import HttpFrontend
from tierwise.server.manager import BackendFactory, ModelManager, registry_backend
from tierwise.server.metrics import ServerMetrics
from tierwise.server.settings import ServerSettings

__all__ = ["TierServer", "create_app", "serve", "uvicorn_server"]

log = logging.getLogger("tierwise.server")


class TierServer:
    """The ASGI application. Lifespan startup loads the repository; shutdown stops taking
    inference requests, drains every queue and unloads the models."""

    def __init__(self, settings: ServerSettings, backend_factory: BackendFactory) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.manager = ModelManager(settings, self.metrics, backend_factory)
        self.dataplane = DataPlane(self.manager, self.metrics)
        self.http = HttpFrontend(settings, self.manager, self.dataplane, self.metrics)
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def startup(self) -> None:
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
    settings: ServerSettings, *, backend_factory: BackendFactory = registry_backend
) -> TierServer:
    """Build the tier server for ``settings``; run it with any ASGI server (uvicorn)."""
    return TierServer(settings, backend_factory)


def uvicorn_server(app: Any, *, drain_timeout_s: float = 0.0, **options: Any) -> Any:
    """A uvicorn server for any tierwise ASGI app, set up the one way they all run: uvloop
    and httptools, the app's own lifespan, tierwise's logs instead of uvicorn's access log,
    no proxy headers, and ``drain_timeout_s`` to finish in-flight requests at shutdown."""
    import uvicorn

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


def serve(settings: ServerSettings, **uvicorn_options: Any) -> bool:
    """Run the server on uvicorn (uvloop and httptools) until SIGINT/SIGTERM, then drain.
    False when it never started (a ``strict`` start with a model that failed, a port in
    use); the caller decides the exit status."""
    server = uvicorn_server(
        create_app(settings), host=settings.host, port=settings.port,
        drain_timeout_s=settings.drain_timeout_s, **uvicorn_options,
    )  # fmt: skip
    server.run()
    return bool(server.started)
