"""Build one edge node from its settings and run it on uvicorn: the tier server and the
agent's endpoints on ``port``, the router front on ``gateway.port``, one process, one
event loop, one set of tokens and one certificate for both ports.

A node bound beyond loopback refuses to start without tokens or mutual TLS unless its
settings say ``insecure``; then the warning is its first log line
(:func:`tierwise.security.check_exposure`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import Any

from tierwise.agent.counters import advertised_address
from tierwise.agent.http import AgentApp
from tierwise.agent.node import EdgeAgent
from tierwise.agent.settings import AgentSettings
from tierwise.agent.tier import ServedTier
from tierwise.errors import ConfigError
from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.router.tiers import Tier
from tierwise.security import Guard, check_exposure
from tierwise.server.app import uvicorn_server

__all__ = ["agent_guard", "build_agent_app", "check_agent_exposure", "run_agent"]

log = logging.getLogger("tierwise.agent")


def agent_guard(settings: AgentSettings, env: Mapping[str, str]) -> Guard:
    """The guard of the node's tokens (``auth`` and the ``control_token_env`` shorthand),
    read from ``env`` now; ConfigError naming a variable that is not set or does not hold
    a tierwise token (never the value)."""
    return Guard.from_settings(settings.access, env)


def check_agent_exposure(settings: AgentSettings, guard: Guard) -> str | None:
    """None when the node may start as configured, the warning to log first when it runs
    unguarded on a non-loopback address because of ``insecure``; ConfigError otherwise."""
    return check_exposure(
        settings.host,
        tokens=guard.protects,
        mutual_tls=settings.tls is not None and settings.tls.mutual,
        insecure=settings.insecure,
    )


def build_agent_app(
    settings: AgentSettings,
    *,
    env: Mapping[str, str],
    gateway_port: int | None = None,
    guard: Guard | None = None,
    port: int | None = None,
) -> AgentApp:
    """The agent's ASGI app. With a ``gateway`` part, the plan's ``local_tier`` (each of
    them, one per model the node serves) is answered in process by this node's server,
    whose thermal guard raises those tiers' offload flags, and whose counters the node's
    heartbeats carry. ``guard`` defaults to the one the settings describe
    (:func:`agent_guard`); ``port`` and ``gateway_port`` are the ports bound (default: the
    settings'), the addresses the heartbeats give."""
    from tierwise.planfile.load import load_plan
    from tierwise.router.build import build_router
    from tierwise.router.gateway import Gateway, GatewaySettings
    from tierwise.router.settings import RouterSettings

    if guard is None:
        guard = agent_guard(settings, env)
    agent = EdgeAgent(settings, env=env, guard=guard)
    tls = settings.tls is not None
    if port is not None:
        agent.address = advertised_address(settings.host, port, tls=tls)
    part = settings.gateway
    if part is None:
        return AgentApp(agent)
    plan = load_plan(part.plan)
    served = settings.models
    tiers: dict[str, Tier] = {}
    for name in part.local_tiers:
        local = plan.tiers.get(name)
        if local is None:
            raise ConfigError(
                "gateway.local_tier", f"one of the plan's tiers ({', '.join(plan.tiers)})", name
            )
        model = local.model or served[0]
        if model not in served:
            raise ConfigError(
                f"tiers.{name}.model in {part.plan}",
                f"a model this node serves ({', '.join(served)})",
                model,
            )
        tiers[name] = ServedTier(
            name, agent.server.dataplane, model, kind=local.kind, timeout_s=local.timeout_s
        )
    router_settings = RouterSettings(hedge_after_ms=part.hedge_after_ms)
    router = build_router(plan, env=env, settings=router_settings, tiers=tiers)
    agent.router = router
    served_port = gateway_port if gateway_port is not None else part.port
    agent.gateway_address = advertised_address(settings.host, served_port, tls=tls)

    def offload(throttled: bool) -> None:
        for name in tiers:
            router.thermal_offload[name] = throttled

    agent.on_thermal.append(offload)
    gateway_settings = GatewaySettings(
        host=settings.host,
        port=part.port,
        max_body_bytes=settings.max_body_bytes,
        outbox_path=settings.state_dir / "outbox.db" if part.outbox is True else None,
        outbox=part.outbox if isinstance(part.outbox, NatsOutboxSettings) else None,
    )
    return AgentApp(agent, Gateway(plan, router, gateway_settings), gateway_port=served_port)


def _bind(host: str, port: int, what: str = "port") -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(what, f"a free port on {host}", port) from exc
    sock.set_inheritable(True)
    return sock


def run_agent(settings: AgentSettings, *, env: Mapping[str, str], **uvicorn_options: Any) -> None:
    """Run the node until SIGINT/SIGTERM, then drain and stop. ConfigError, before any
    port is bound, when a token variable is missing, a TLS file does not load, or the
    node would be exposed unguarded."""
    guard = agent_guard(settings, env)
    warning = check_agent_exposure(settings, guard)
    if warning is not None:
        log.warning("%s", warning)
    if settings.tls is not None:
        uvicorn_options = settings.tls.uvicorn_options() | uvicorn_options
    if settings.gateway is not None and settings.gateway.port == settings.port != 0:
        raise ConfigError(
            "gateway.port", f"a port other than the node's own ({settings.port})",
            settings.gateway.port,
        )  # fmt: skip
    sockets = [_bind(settings.host, settings.port)]
    gateway_port = None
    if settings.gateway is not None:
        sockets.append(_bind(settings.host, settings.gateway.port, "gateway.port"))
        gateway_port = sockets[1].getsockname()[1]
    port = int(sockets[0].getsockname()[1])
    app = build_agent_app(settings, env=env, gateway_port=gateway_port, guard=guard, port=port)
    server = uvicorn_server(app, drain_timeout_s=settings.drain_timeout_s, **uvicorn_options)
    server.run(sockets=sockets)
