"""Build one edge node from its settings and run it on uvicorn: the tier server and the
agent's endpoints on ``port``, the router front on ``gateway.port``, one process, one
event loop."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from tierwise.agent.http import AgentApp
from tierwise.agent.node import EdgeAgent
from tierwise.agent.settings import AgentSettings
from tierwise.agent.tier import ServedTier
from tierwise.errors import ConfigError
from tierwise.router.tiers import Tier
from tierwise.server.app import uvicorn_server

__all__ = ["build_agent_app", "run_agent"]


def build_agent_app(
    settings: AgentSettings, *, env: Mapping[str, str], gateway_port: int | None = None
) -> AgentApp:
    """The agent's ASGI app. With a ``gateway`` part, the plan's ``local_tier`` (each of
    them, one per model the node serves) is answered in process by this node's server,
    whose thermal guard raises those tiers' offload flags."""
    from tierwise.planfile.load import load_plan
    from tierwise.router.build import build_router
    from tierwise.router.gateway import Gateway, GatewaySettings
    from tierwise.router.settings import RouterSettings

    agent = EdgeAgent(settings, env=env)
    token = None
    if settings.control_token_env is not None:
        token = env.get(settings.control_token_env)
        if not token:
            raise ConfigError(
                "control_token_env",
                f"the environment variable {settings.control_token_env} to be set",
            )
    part = settings.gateway
    if part is None:
        return AgentApp(agent, control_token=token)
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

    def offload(throttled: bool) -> None:
        for name in tiers:
            router.thermal_offload[name] = throttled

    agent.on_thermal.append(offload)
    gateway_settings = GatewaySettings(
        host=settings.host,
        port=part.port,
        max_body_bytes=settings.max_body_bytes,
        outbox_path=settings.state_dir / "outbox.db" if part.outbox else None,
    )
    return AgentApp(
        agent,
        Gateway(plan, router, gateway_settings),
        gateway_port=gateway_port if gateway_port is not None else part.port,
        control_token=token,
    )


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
    """Run the node until SIGINT/SIGTERM, then drain and stop."""
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
    app = build_agent_app(settings, env=env, gateway_port=gateway_port)
    server = uvicorn_server(app, drain_timeout_s=settings.drain_timeout_s, **uvicorn_options)
    server.run(sockets=sockets)
