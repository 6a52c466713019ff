"""Build the control plane from its settings and run it on uvicorn.

Bound beyond loopback it refuses to start without tokens or mutual TLS unless
``insecure`` (then the warning is its first log line), like every tierwise server.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from tierwise.control.app import ControlApp
from tierwise.control.desired import DesiredBook
from tierwise.control.engine import RolloutEngine
from tierwise.control.prom_source import PrometheusSource
from tierwise.control.resolve import Resolver
from tierwise.control.settings import ControlSettings
from tierwise.control.sources import GateSource, HistorySource, PrometheusGateSource
from tierwise.control.store_open import open_control_store
from tierwise.control.window import History
from tierwise.security import Guard, check_exposure
from tierwise.server.app import uvicorn_server

__all__ = ["build_control_app", "run_control"]

log = logging.getLogger("tierwise.control")


def build_control_app(
    settings: ControlSettings, *, env: Mapping[str, str], guard: Guard | None = None
) -> ControlApp:
    """The control plane's ASGI app, its store opened and its state loaded."""
    if guard is None:
        guard = Guard.from_settings(settings.auth, env)
    resolver = Resolver(settings.registry, env)
    try:
        resolver.check()
        store = open_control_store(settings.store)
    except BaseException:
        resolver.close()
        raise
    try:
        history = History(max_samples=settings.history_samples, max_keys=2 * settings.max_nodes)
        source: GateSource = HistorySource(history)
        prometheus = None
        if settings.prometheus_url is not None:
            prometheus = PrometheusSource(settings.prometheus_url)
            source = PrometheusGateSource(prometheus)
        desired = DesiredBook(store.all_desired())
        engine = RolloutEngine(
            store, resolver=resolver, source=source, desired=desired, stale_s=settings.stale_s
        )
    except BaseException:
        store.close()
        resolver.close()
        raise

    def close() -> None:
        resolver.close()
        if prometheus is not None:
            prometheus.close()
        store.close()

    return ControlApp(
        store=store,
        engine=engine,
        history=history,
        desired=desired,
        guard=guard,
        heartbeat_s=settings.heartbeat_s,
        tick_s=settings.tick_s,
        lease_s=settings.lease_s,
        replica=settings.replica or f"{socket.gethostname()}:{os.getpid()}",
        max_body_bytes=settings.max_body_bytes,
        max_pending_heartbeats=settings.max_pending_heartbeats,
        max_nodes=settings.max_nodes,
        telemetry=settings.telemetry,
        on_shutdown=close,
    )


def run_control(settings: ControlSettings, *, env: Mapping[str, str], **options: Any) -> None:
    """Serve until SIGINT/SIGTERM. ConfigError, before the port opens, when a token
    variable is missing, a TLS file does not load or the port would be open unguarded."""
    guard = Guard.from_settings(settings.auth, env)
    warning = check_exposure(
        settings.host,
        tokens=guard.protects,
        mutual_tls=settings.tls is not None and settings.tls.mutual,
        insecure=settings.insecure,
    )
    if warning is not None:
        log.warning("%s", warning)
    app = build_control_app(settings, env=env, guard=guard)
    server = uvicorn_server(
        app, tls=settings.tls, host=settings.host, port=settings.port, **options
    )
    log.info("control plane on %s:%d (store: %s)", settings.host, settings.port, app.store.kind)
    server.run()
