"""``tierwise control``: run the fleet control plane, and look at the fleet it keeps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from tierwise.cli.common import JsonOpt, as_flag, out_console, print_json
from tierwise.errors import ConfigError
from tierwise.settings_errors import settings_error

__all__ = [
    "DEFAULT_CONTROL",
    "DEFAULT_TOKEN_ENV",
    "CaOpt",
    "ControlOpt",
    "TokenEnvOpt",
    "control_app",
    "control_client",
    "split_target",
]

#: where the subcommands find the control plane, unless --control or TIERWISE_CONTROL
DEFAULT_CONTROL = "http://127.0.0.1:9100"
#: the variable the subcommands read their bearer token from, unless --token-env
DEFAULT_TOKEN_ENV = "TIERWISE_TOKEN"  # noqa: S105 (a variable name, not a secret)

control_app = typer.Typer(
    help="Run the fleet control plane (`tierwise control --config control.yaml`, or "
    "--store and --registry/--trusted-key): nodes heartbeat to it with their labels, "
    "versions and metrics, read their desired versions from it, and `tierwise rollout` "
    "moves a version through a canary pool and staged percentages with gates and "
    "automatic rollback. Storage: a SQLite file (default) or postgresql://... for several "
    "replicas. Tokens: scope telemetry for agents and reads, admin for changes. "
    "Subcommands look at a running control plane.",
    invoke_without_command=True,
)

ControlOpt = Annotated[
    str,
    typer.Option(
        "--control",
        envvar="TIERWISE_CONTROL",
        help="The control plane's URL (or TIERWISE_CONTROL).",
    ),
]
TokenEnvOpt = Annotated[
    str,
    typer.Option(
        "--token-env",
        help="Environment variable holding the bearer token to send "
        "(nothing is sent when it is not set).",
    ),
]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="CA certificates (PEM) an https control plane is checked against."),
]


def control_client(control: str, token_env: str, ca: Path | None) -> Any:
    """A client of the control plane at ``control``, sending the token in ``token_env``
    (only over HTTPS, or to a loopback host)."""
    from urllib.parse import urlsplit

    from tierwise.control.client import ControlClient
    from tierwise.security import TlsClientSettings, client_context, is_loopback

    parts = urlsplit(control)
    token = os.environ.get(token_env) or None
    context = None
    if parts.scheme == "https":
        context = client_context(TlsClientSettings(ca=ca), who=f"control plane {control}")
    elif ca is not None:
        raise ConfigError("--ca", "an https:// --control URL to check a certificate of", control)
    elif token is not None and not is_loopback(parts.hostname or ""):
        raise ConfigError(
            "--control", "an https:// URL (or a loopback host) when a token is sent", control
        )
    return ControlClient(control, token=token, ssl_context=context)


def _settings(config: Path | None, overrides: dict[str, Any]) -> Any:
    from tierwise.control.settings import ControlSettings
    from tierwise.yaml_limits import load_settings_file

    data: dict[str, Any] = {}
    where = "command line"
    if config is not None:
        data = load_settings_file(config)
        where = str(config)
        base = config.parent
        for key in ("tokens_file",):
            auth = data.get("auth")
            if isinstance(auth, dict) and isinstance(auth.get(key), str):
                auth[key] = str(base / auth[key])
        registry = data.get("registry")
        if isinstance(registry, dict) and isinstance(registry.get("trusted_keys"), list):
            registry["trusted_keys"] = [str(base / k) for k in registry["trusted_keys"]]
    registry = dict(data.get("registry") or {})
    if overrides.get("registry_store") is not None:
        registry["store"] = overrides["registry_store"]
    if overrides.get("trusted_keys"):
        registry["trusted_keys"] = [str(k) for k in overrides["trusted_keys"]]
    if overrides.get("plain_http"):
        registry["plain_http"] = True
    if registry:
        data["registry"] = registry
    if overrides.get("tokens_file") is not None:
        data["auth"] = {**(data.get("auth") or {}), "tokens_file": str(overrides["tokens_file"])}
    tls = {k: str(overrides[k]) for k in ("cert", "key", "client_ca") if overrides.get(k)}
    if tls:
        data["tls"] = {**(data.get("tls") or {}), **tls}
    plain = ("store", "host", "port", "prometheus_url", "heartbeat_s", "insecure")
    data.update({k: overrides[k] for k in plain if overrides.get(k) is not None})
    if "store" not in data:
        raise ConfigError("--store", "a SQLite file or postgresql://... (or store: in --config)")
    if "registry" not in data:
        raise ConfigError("--registry", "the registry rollouts resolve bundles in (or registry:)")
    try:
        return ControlSettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error(where, exc, ControlSettings) from exc


@control_app.callback()
def control(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="control.yaml.")] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="SQLite file, or postgresql://USER@HOST:PORT/DB."),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Bundle store: a folder or oci://HOST[:PORT]."),
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Public key bundles must be signed by (repeatable)."),
    ] = None,
    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="Talk to the OCI registry over plain HTTP.")
    ] = False,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to bind.")] = None,
    tokens_file: Annotated[
        Path | None, typer.Option("--tokens-file", help="Token hash lines.")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its key (PEM).")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option("--tls-client-ca", help="Require client certificates.")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Run unguarded beyond loopback (logged).")
    ] = False,
    prometheus_url: Annotated[
        str | None,
        typer.Option("--prometheus-url", help="Gates read this Prometheus, not agent reports."),
    ] = None,
    heartbeat_s: Annotated[
        float | None, typer.Option("--heartbeat-s", help="Heartbeat interval asked of agents.")
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Logs as JSON lines.")] = False,
) -> None:
    """Run the control plane until SIGINT/SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from tierwise.control.service import run_control
    from tierwise.server.logs import configure_logging

    overrides: dict[str, Any] = {
        "store": store,
        "host": host,
        "port": port,
        "prometheus_url": prometheus_url,
        "heartbeat_s": heartbeat_s,
        "insecure": True if insecure else None,
        "registry_store": registry,
        "trusted_keys": [k.absolute() for k in trusted_key or []],
        "plain_http": plain_http,
        "tokens_file": tokens_file.absolute() if tokens_file else None,
        "cert": tls_cert and tls_cert.absolute(),
        "key": tls_key and tls_key.absolute(),
        "client_ca": tls_client_ca and tls_client_ca.absolute(),
    }
    settings = _settings(config, overrides)
    configure_logging("info", json_lines=log_json)
    run_control(settings, env=dict(os.environ))


@control_app.command("nodes")
def nodes(
    selector: Annotated[str, typer.Option("--selector", "-l", help="Label selector.")] = "",
    control: ControlOpt = DEFAULT_CONTROL,
    token_env: TokenEnvOpt = DEFAULT_TOKEN_ENV,
    ca: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the nodes (labels, reachability, serving and desired versions)."""
    _check_selector(selector)  # a malformed one is a usage error here, not the server's
    with control_client(control, token_env, ca) as client:
        doc = client.call("GET", "/v1/nodes", selector=selector or None)
    if as_json:
        print_json(doc)
        return
    for node in doc["nodes"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(node["labels"].items()))
        serving = ", ".join(
            f"{name}:{part.get('version') or '-'}"
            for name, part in (node["status"].get("bundles") or {}).items()
        )
        state = "up" if node["alive"] else "UNREACHABLE"
        out_console.print(
            f"{node['node']:<24} {state:<12} {serving:<28} {labels}", markup=False, soft_wrap=True
        )
    out_console.print(f"{doc['count']} node(s)", markup=False)


@control_app.command("desired")
def set_desired(
    target: Annotated[str, typer.Argument(help="BUNDLE:VERSION (or tag, or sha256 digest).")],
    selector: Annotated[str, typer.Option("--selector", "-l", help="Label selector.")] = "",
    control: ControlOpt = DEFAULT_CONTROL,
    token_env: TokenEnvOpt = DEFAULT_TOKEN_ENV,
    ca: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a version on the selected nodes at once (no stages, no gates): for a new
    fleet's first version. Nodes a rollout is moving are refused."""

    bundle, ref = split_target(target)
    _check_selector(selector)
    with control_client(control, token_env, ca) as client:
        doc = client.call(
            "PUT", "/v1/desired", {"bundle": bundle, "ref": ref, "selector": selector}
        )
    if as_json:
        print_json(doc)
    else:
        out_console.print(
            f"{doc['bundle']}:{doc['version']} ({doc['digest'][:19]}) desired on "
            f"{len(doc['nodes'])} node(s)",
            markup=False,
        )


@control_app.command("audit")
def audit(
    rollout: Annotated[str | None, typer.Option("--rollout", help="Only this rollout.")] = None,
    control: ControlOpt = DEFAULT_CONTROL,
    token_env: TokenEnvOpt = DEFAULT_TOKEN_ENV,
    ca: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit log: every decision with its evidence."""
    with control_client(control, token_env, ca) as client:
        doc = client.call("GET", "/v1/audit", rollout=rollout)
    if as_json:
        print_json(doc)
        return
    from tierwise.control.render import audit_lines

    for line in audit_lines(doc["entries"]):
        out_console.print(line, markup=False, soft_wrap=True)
    if not doc["entries"]:
        which = f" for rollout {rollout!r}" if rollout else ""
        out_console.print(f"no audit entries{which}", markup=False)


def _check_selector(selector: str) -> None:
    """ConfigError naming --selector when ``selector`` is malformed."""
    from tierwise.control.selector import parse_selector
    from tierwise.errors import ConfigError

    try:
        parse_selector(selector)
    except ConfigError as exc:
        raise as_flag(exc, {"selector": "--selector"}) from exc


def split_target(target: str) -> tuple[str, str]:
    """``BUNDLE:REF`` split; ConfigError naming what was expected."""
    bundle, sep, ref = target.partition(":")
    if not sep or not bundle or not ref:
        raise ConfigError(
            "BUNDLE:VERSION",
            "a bundle and a version, tag or sha256 digest, such as digits-edge:2.0.0",
            target,
        )
    return bundle, ref
