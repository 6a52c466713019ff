"""``tierwise agent``: run one edge node, and talk to a running one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tierwise.cli.common import EXIT_FAILURE, err_console, out_console, print_json
from tierwise.errors import ConfigError

__all__ = ["agent_app"]

agent_app = typer.Typer(
    help="Run an edge node (`tierwise agent --config agent.yaml`): tier server, router, "
    "outbox and verified registry sync. Subcommands talk to a running node.",
    invoke_without_command=True,
)

ConfigOpt = Annotated[Path, typer.Option("--config", help="agent.yaml of the node.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as JSON.")]


@agent_app.callback()
def agent(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="agent.yaml of the node to run.")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port of the tier server (overrides the file).")
    ] = None,
    gateway_port: Annotated[
        int | None, typer.Option("--gateway-port", help="Port of the router front.")
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Logs as JSON lines.")] = False,
) -> None:
    """Run the edge node described by --config until SIGINT/SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise ConfigError("--config", "the node's agent.yaml")
    from tierwise.agent import load_agent_settings, run_agent
    from tierwise.server.logs import configure_logging

    settings = load_agent_settings(config, port=port)
    if gateway_port is not None:
        if settings.gateway is None:
            raise ConfigError("--gateway-port", "a config with a gateway part")
        settings = settings.model_copy(
            update={"gateway": settings.gateway.model_copy(update={"port": gateway_port})}
        )
    configure_logging("info", json_lines=log_json)
    # The environment is read here, at the edge: the registry password and the upstream
    # tiers' Authorization headers come from variables the config names.
    run_agent(settings, env=dict(os.environ))


def _call(config: Path, method: str, action: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    from tierwise.agent import load_agent_settings

    settings = load_agent_settings(config)
    url = f"http://{settings.host}:{settings.port}/v2/agent/{action}"
    headers = {}
    if settings.control_token_env is not None:
        token = os.environ.get(settings.control_token_env)
        if not token:
            raise ConfigError(
                "control_token_env", f"the environment variable {settings.control_token_env}"
            )
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=300.0)
    except httpx.HTTPError as exc:
        err_console.print(f"error: the agent at {url} did not answer: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILURE) from None
    doc = response.json()
    if response.status_code >= 400:
        err_console.print(f"error: {doc.get('error', response.text)}", markup=False)
        raise typer.Exit(EXIT_FAILURE)
    return doc


def _print_status(status: dict[str, Any]) -> None:
    sync = status.get("last_sync") or {}
    temp = status.get("temperature_c")
    out_console.print(
        f"node {status['node']}: {status['bundle']}:{status['version'] or '-'} "
        f"(generation {status['generation'] or '-'}), "
        f"{'ready' if status['health']['ready'] else 'NOT READY'}; kept "
        f"{', '.join(status['previous']) or 'none'}\n"
        f"  desired {status['desired'] or '-'}; last sync {sync.get('result', '-')}"
        f"{': ' + sync['error'] if sync.get('error') else ''}\n"
        f"  temperature {'-' if temp is None else f'{temp:.1f} C'}"
        f"{' THROTTLED' if status['thermal_throttled'] else ''}; queue depth "
        f"{status['queue_depth']}",
        markup=False,
    )


@agent_app.command("status")
def status(config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """Show a running node's version, health, temperature, queue and last sync."""
    doc = _call(config, "GET", "status")
    print_json(doc) if as_json else _print_status(doc)


@agent_app.command("sync")
def sync(config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """Sync a running node now; exit 1 when the sync failed (the old version serves on)."""
    doc = _call(config, "POST", "sync")
    print_json(doc) if as_json else _print_status(doc["status"])
    if doc["sync"]["result"] == "error":
        raise typer.Exit(EXIT_FAILURE)


@agent_app.command("desired")
def desired(
    config: ConfigOpt,
    ref: Annotated[str, typer.Argument(help="Version, tag or sha256 digest to run.")],
    as_json: JsonOpt = False,
) -> None:
    """Set the version a running node should run, and sync now."""
    doc = _call(config, "PUT", "desired", {"ref": ref})
    print_json(doc) if as_json else _print_status(doc["status"])
    if doc["sync"]["result"] in ("error", "held"):  # the node does not run what was asked
        raise typer.Exit(EXIT_FAILURE)


@agent_app.command("rollback")
def rollback(
    config: ConfigOpt,
    to: Annotated[
        str | None, typer.Option("--to", help="A kept version (default: the previous one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Go back to the previous kept version at once, from the node's own store."""
    doc = _call(config, "POST", "rollback", {"version": to} if to else {})
    if as_json:
        print_json(doc)
    else:
        out_console.print(f"rolled back to {doc['rolled_back_to']} in {doc['seconds']} s")
        _print_status(doc["status"])
