"""``tierwise serve``: run a tier server over a model repository."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tierwise.server import ServerSettings, load_yaml_settings
from tierwise.server import serve as run_server
from tierwise.server.logs import configure_logging

__all__ = ["serve"]


def serve(
    model_repo: Annotated[
        Path, typer.Option("--model-repo", help="DIR/<model>/<version>/model.onnx")
    ],
    host: Annotated[
        str | None,
        typer.Option(help="Address to bind (default: 127.0.0.1, or the --config file's)"),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind (default: 8000, or the --config file's)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="server.yaml with more settings")
    ] = None,
    poll_s: Annotated[
        float | None, typer.Option("--poll-s", help="Re-scan the repository every N seconds")
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="Log every request")
    ] = None,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--no-log-json", help="Logs as JSON lines")
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Exit at start when any model fails to load or warm up (default: serve "
            "the others and mark it UNAVAILABLE)",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="Serve HTTPS with this certificate chain (PEM)"),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The private key of --tls-cert (PEM)")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-client-ca",
            help="Mutual TLS: only clients with a certificate this CA signed may connect",
        ),
    ] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            help="Token hash lines (tierwise keys token): every endpoint but the health "
            "probes then needs a bearer token with its scope",
        ),
    ] = None,
    insecure: Annotated[
        bool | None,
        typer.Option(
            "--insecure/--no-insecure",
            help="Run on a non-loopback address with no tokens and no mutual TLS "
            "(refused otherwise)",
        ),
    ] = None,
    tier: Annotated[
        str | None,
        typer.Option(
            "--tier", help="The tier this server answers for (metrics label; default: local)"
        ),
    ] = None,
    idle_watts: Annotated[
        float | None,
        typer.Option("--idle-watts", help="Power model: the node's draw with nothing running"),
    ] = None,
    active_watts: Annotated[
        float | None,
        typer.Option(
            "--active-watts",
            help="Power model: the node's draw while a model computes; energy is estimated "
            "from it where no RAPL counter is readable",
        ),
    ] = None,
    rapl: Annotated[
        str | None,
        typer.Option("--rapl", help="RAPL counters: auto (/sys/class/powercap), off, or a folder"),
    ] = None,
    no_energy: Annotated[
        bool,
        typer.Option(
            "--no-energy",
            help="Account no energy (busy time is still exported). Without a readable RAPL "
            "counter and without --active-watts no energy is exported either",
        ),
    ] = False,
) -> None:
    """Serve every model of a repository over the Open Inference Protocol (V2 REST).

    Scopes: inference and metadata need 'infer', the repository API 'admin',
    /metrics 'telemetry'; the health probes are open. Bound beyond loopback,
    the server refuses to start without tokens or mutual TLS unless told
    --insecure.

    Energy: measured by RAPL where readable, else estimated from --active-watts
    (and --idle-watts); with neither, /metrics has busy seconds but no energy.
    """

    tls = {"cert": tls_cert, "key": tls_key, "client_ca": tls_client_ca}
    energy = {
        "idle_watts": idle_watts,
        "active_watts": active_watts,
        "rapl": rapl,
        "enabled": False if no_energy else None,
    }
    overrides = {
        "model_repo": model_repo,
        "host": host,
        "port": port,
        "repository_poll_s": poll_s,
        "access_log": access_log,
        "log_json": log_json,
        "strict": strict,
        "insecure": insecure,
        "tls": {k: v for k, v in tls.items() if v is not None} or None,
        "auth": None if tokens_file is None else {"tokens_file": tokens_file},
        "tier": tier,
        "energy": {k: v for k, v in energy.items() if v is not None} or None,
    }
    if config is not None:
        settings = load_yaml_settings(config, **overrides)
    else:
        settings = ServerSettings.model_validate(
            {k: v for k, v in overrides.items() if v is not None}
        )
    if not settings.model_repo.is_dir():
        raise typer.BadParameter(
            f"{settings.model_repo} is not a directory", param_hint="--model-repo"
        )
    configure_logging(settings.log_level, json_lines=settings.log_json)
    # the environment is read here, at the edge: auth.tokens_env names variables in it
    if not run_server(settings, env=dict(os.environ)):
        raise typer.Exit(code=3)  # uvicorn's own status for a failed start
