"""``tierwise agent``: run one edge node, and talk to a running one."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from tierwise.cli.common import EXIT_FAILURE, JsonOpt, err_console, out_console, print_json
from tierwise.errors import ConfigError
from tierwise.settings_errors import settings_error

if TYPE_CHECKING:
    from tierwise.server.settings import EnergySettings

__all__ = ["agent_app"]

agent_app = typer.Typer(
    help="Run an edge node (`tierwise agent --config agent.yaml`): tier server, router, "
    "outbox and verified registry sync. A node serves several models by syncing several "
    "bundles, one per model (`bundles:` in agent.yaml, each with its `serve:` list): a "
    "detector and a classifier are versioned, updated and rolled back on their own, and "
    "a bundle that fails to verify or load leaves the others serving. Subcommands talk to "
    "a running node; on a node with several bundles, `desired` and `rollback` take "
    "--bundle. Access: tokens (--tokens-file or auth: in agent.yaml; scope admin for "
    "desired, sync and rollback, telemetry for status and metrics, infer for inference) "
    "and TLS (--tls-cert, --tls-key; --tls-client-ca for mutual TLS). A node bound beyond "
    "loopback without tokens or mutual TLS refuses to start unless --insecure.",
    invoke_without_command=True,
)

ConfigOpt = Annotated[Path, typer.Option("--config", help="agent.yaml of the node.")]
BundleOpt = Annotated[
    str | None,
    typer.Option("--bundle", help="The bundle to act on (required when the node syncs several)."),
]
TokenEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--token-env",
        help="Environment variable holding the token to send (default: the config's "
        "control_token_env).",
    ),
]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="CA certificates (PEM) the node's TLS certificate is checked "
                 "against (default: the system's trust store)."),
]  # fmt: skip


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
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="The node's certificate chain (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The private key of --tls-cert (PEM).")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option("--tls-client-ca", help="Require client certificates this CA signed."),
    ] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option("--tokens-file", help="Token hash lines (`tierwise keys token`)."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Run without tokens or mutual TLS on a non-loopback address (logged).",
        ),
    ] = False,
    tier: Annotated[
        str | None,
        typer.Option("--tier", help="The tier label of the node's energy series."),
    ] = None,
    idle_watts: Annotated[
        float | None,
        typer.Option("--idle-watts", help="Power model: the node's draw with nothing running."),
    ] = None,
    active_watts: Annotated[
        float | None,
        typer.Option(
            "--active-watts",
            help="Power model: the node's draw while a model computes (energy estimate).",
        ),
    ] = None,
    no_energy: Annotated[
        bool, typer.Option("--no-energy", help="Account no energy (busy time only).")
    ] = False,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="KEY=VALUE: a label of the node (repeatable; adds to the file's labels, "
            "or replaces the one of the same key).",
        ),
    ] = None,
) -> None:
    """Run the edge node described by --config until SIGINT/SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise ConfigError("--config", "the node's agent.yaml")
    from tierwise.agent import load_agent_settings, run_agent
    from tierwise.agent.settings import with_access
    from tierwise.server.logs import configure_logging

    settings = with_access(
        load_agent_settings(config, port=port, tier=tier),
        tls_cert=_absolute(tls_cert),
        tls_key=_absolute(tls_key),
        tls_client_ca=_absolute(tls_client_ca),
        tokens_file=_absolute(tokens_file),
        insecure=True if insecure else None,
    )
    energy = {"idle_watts": idle_watts, "active_watts": active_watts}
    energy = {k: v for k, v in energy.items() if v is not None}
    if no_energy:
        energy["enabled"] = False
    if energy:
        settings = settings.model_copy(update={"energy": _energy(settings.energy, energy)})
    if label:
        settings = settings.model_copy(update={"labels": _labels(settings.labels, label)})
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


def _energy(current: EnergySettings, changes: dict[str, Any]) -> EnergySettings:
    """The file's energy settings with the command line's on top, validated together."""
    from tierwise.server.settings import EnergySettings

    try:
        return EnergySettings.model_validate(current.model_dump() | changes)
    except ValidationError as exc:
        raise settings_error("command line", exc, EnergySettings) from exc


def _labels(current: dict[str, str], given: list[str]) -> dict[str, str]:
    """The file's labels with the command line's ``KEY=VALUE`` ones on top, checked."""
    from tierwise.agent import check_labels

    labels = dict(current)
    for item in given:
        key, equals, value = item.partition("=")
        if not equals:
            raise ConfigError("--label", "KEY=VALUE", item)
        labels[key] = value
    try:
        return check_labels(labels)
    except ConfigError as exc:
        raise ConfigError(
            f"--label {exc.parameter.removeprefix('labels.')}", exc.expected, exc.got
        ) from exc


def _absolute(path: Path | None) -> Path | None:
    """A path given on the command line, taken from the working folder (a config file's
    own paths are taken from the file's folder)."""
    return None if path is None else path.absolute()


def _reachable(host: str) -> str:
    """The host to call a node bound to ``host`` at: loopback for a wildcard address."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"[{address}]" if address.version == 6 else str(address)


def _call(
    config: Path,
    method: str,
    action: str,
    body: dict[str, Any] | None = None,
    *,
    token_env: str | None = None,
    ca: Path | None = None,
) -> Any:
    from tierwise.agent import load_agent_settings
    from tierwise.errors import TierError
    from tierwise.http.client import HttpClient
    from tierwise.security import TlsClientSettings, client_context

    settings = load_agent_settings(config)
    host = _reachable(settings.host)
    scheme = "https" if settings.tls is not None else "http"
    url = f"{scheme}://{host}:{settings.port}/v2/agent/{action}"
    headers = {}
    variable = token_env or settings.control_token_env
    if variable is not None:
        token = os.environ.get(variable)
        if not token:
            raise ConfigError("--token-env", f"the environment variable {variable} to be set")
        headers["Authorization"] = f"Bearer {token}"
    context = None
    if settings.tls is not None:
        context = client_context(TlsClientSettings(ca=_absolute(ca)), who=f"agent at {url}")
    try:
        with HttpClient(timeout_s=300.0, ssl_context=context) as client:
            response = client.request_sync(method, url, json=body, headers=headers)
    except TierError as exc:
        err_console.print(
            f"error: the agent at {url} did not answer: {exc.reason}", markup=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_FAILURE) from None
    doc = response.json()
    if response.status_code >= 400:
        err_console.print(f"error: {doc.get('error', response.text)}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE)
    return doc


def _print_status(status: dict[str, Any]) -> None:
    temp = status.get("temperature_c")
    lines = [
        f"node {status['node']}: {'ready' if status['health']['ready'] else 'NOT READY'}; "
        f"temperature {'-' if temp is None else f'{temp:.1f} C'}"
        f"{' THROTTLED' if status['thermal_throttled'] else ''}; queue depth "
        f"{status['queue_depth']}"
    ]
    for name, part in (status.get("bundles") or {}).items():
        sync = part.get("last_sync") or {}
        models = ", ".join(
            f"{m}{'' if ready else ' (NOT READY)'}" for m, ready in part["models"].items()
        )
        lines.append(
            f"  {name}:{part['version'] or '-'} (generation {part['generation'] or '-'}) "
            f"models {models}; kept {', '.join(part['previous']) or 'none'}; desired "
            f"{part['desired'] or '-'}; last sync {sync.get('result', '-')}"
            f"{': ' + sync['error'] if sync.get('error') else ''}"
        )
    desired = status.get("desired")
    if isinstance(desired, str) and desired.startswith("unreadable"):
        lines.append(f"  desired state {desired}")
    out_console.print("\n".join(lines), markup=False, soft_wrap=True)


@agent_app.command("status")
def status(
    config: ConfigOpt, as_json: JsonOpt = False, token_env: TokenEnvOpt = None, ca: CaOpt = None
) -> None:
    """Show a running node's health, temperature and queue, and for each bundle its
    serving version, generation, kept versions, desired reference and last sync."""
    doc = _call(config, "GET", "status", token_env=token_env, ca=ca)
    print_json(doc) if as_json else _print_status(doc)


@agent_app.command("sync")
def sync(
    config: ConfigOpt, as_json: JsonOpt = False, token_env: TokenEnvOpt = None, ca: CaOpt = None
) -> None:
    """Sync every bundle of a running node now; exit 1 when a bundle's sync failed (its
    old version serves on, and so do the others)."""
    doc = _call(config, "POST", "sync", token_env=token_env, ca=ca)
    print_json(doc) if as_json else _print_status(doc["status"])
    if doc["sync"]["result"] == "error":
        raise typer.Exit(EXIT_FAILURE)


@agent_app.command("desired")
def desired(
    config: ConfigOpt,
    ref: Annotated[str, typer.Argument(help="Version, tag or sha256 digest to run.")],
    bundle: BundleOpt = None,
    as_json: JsonOpt = False,
    token_env: TokenEnvOpt = None,
    ca: CaOpt = None,
) -> None:
    """Set the version a running node should run of one bundle (the others keep theirs),
    and sync now; exit 1 when the node does not run what was asked."""
    body: dict[str, Any] = {"ref": ref} | ({"bundle": bundle} if bundle else {})
    doc = _call(config, "PUT", "desired", body, token_env=token_env, ca=ca)
    print_json(doc) if as_json else _print_status(doc["status"])
    if doc["sync"]["result"] in ("error", "held"):  # the node does not run what was asked
        raise typer.Exit(EXIT_FAILURE)


@agent_app.command("rollback")
def rollback(
    config: ConfigOpt,
    to: Annotated[
        str | None, typer.Option("--to", help="A kept version (default: the previous one).")
    ] = None,
    bundle: BundleOpt = None,
    as_json: JsonOpt = False,
    token_env: TokenEnvOpt = None,
    ca: CaOpt = None,
) -> None:
    """Take one bundle back to its previous kept version at once, from the node's own
    store; the node's other bundles are not touched."""
    body = ({"version": to} if to else {}) | ({"bundle": bundle} if bundle else {})
    doc = _call(config, "POST", "rollback", body, token_env=token_env, ca=ca)
    if as_json:
        print_json(doc)
    else:
        out_console.print(
            f"{doc['bundle']}: rolled back to {doc['rolled_back_to']} in {doc['seconds']} s"
        )
        _print_status(doc["status"])
