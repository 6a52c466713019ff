"""``tierwise gateway`` and ``tierwise route explain``: the router as an HTTP front, and
what it would do with one request."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import out_console, print_json

__all__ = ["gateway", "route_app"]

log = logging.getLogger("tierwise.router")

route_app = typer.Typer(help="Inspect how requests are routed.", no_args_is_help=True)


def gateway(
    plan: Annotated[Path, typer.Option("--plan", help="plan.yaml: tiers and cascades")],
    host: Annotated[
        str | None,
        typer.Option(help="Address to bind (default: 127.0.0.1, or the --config file's)"),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind (default: 8080, or the --config file's)")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="gateway.yaml: auth, tls, clients and other settings"),
    ] = None,
    outbox: Annotated[
        Path | None, typer.Option(help="SQLite file for deferred and partitioned requests")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option(help="JSON-lines file for sampled traces (drift checks)")
    ] = None,
    hedge_after_ms: Annotated[
        float | None,
        typer.Option(help="Also ask the next remote tier when one is this slow (interactive)"),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this PEM certificate")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The certificate's PEM private key")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option("--tls-client-ca", help="Require client certificates this CA signed"),
    ] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option("--tokens-file", help="Token hash lines (tierwise keys token); needs tokens"),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Run open beyond loopback (no tokens, no mutual TLS)"),
    ] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help="Logs as JSON lines")] = False,
) -> None:
    """Serve a V2 HTTP front that routes every request through the plan's cascade.

    At start it checks each cascade stage's score output (``output:``,
    ``scores:``) against its tier's model (a local model's signature, a remote's
    GET /v2/models/M) and refuses a plan naming an output the model lacks or one
    that holds no scores. Bound beyond loopback it needs tokens or mutual TLS, or
    --insecure. Workloads whose first stage runs on a device are also served to
    browsers: the device page at /device/ (see the README's device tier section).
    """
    from tierwise.planfile.load import load_plan
    from tierwise.router.build import build_router
    from tierwise.router.gateway import Gateway, load_gateway_settings
    from tierwise.router.settings import RouterSettings
    from tierwise.security import Guard, check_exposure
    from tierwise.server.app import uvicorn_server
    from tierwise.server.logs import configure_logging
    from tierwise.telemetry.sampling import JsonlSink

    settings = load_gateway_settings(
        config, host=host, port=port, outbox_path=outbox, insecure=insecure or None,
        tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
        tokens_file=tokens_file,
    )  # fmt: skip
    env = dict(os.environ)
    configure_logging("info", json_lines=log_json)
    # the exposure check comes first: a refusal before anything loads, the warning as the
    # first line logged
    guard = Guard.from_settings(settings.auth, env)
    tls = settings.tls
    warning = check_exposure(
        settings.host, tokens=guard.protects, mutual_tls=tls is not None and tls.mutual,
        insecure=settings.insecure,
    )  # fmt: skip
    if warning is not None:
        log.warning(warning)
    tls_options = tls.uvicorn_options() if tls is not None else {}
    loaded = load_plan(plan)
    # The environment is read here, at the edge: tiers name the variables holding their
    # Authorization headers and get only those values.
    sink = JsonlSink(samples, max_bytes=256 * 1024 * 1024) if samples is not None else None
    router_settings = RouterSettings(hedge_after_ms=hedge_after_ms)
    router = build_router(loaded, env=env, settings=router_settings, samples=sink)
    app = Gateway(loaded, router, settings, env=env)
    if app.device_page is not None and app.device_page.models.workloads:
        scheme = "https" if tls is not None else "http"
        shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
        log.info(
            "device page: %s://%s:%d/device/ (workloads %s)", scheme, shown, settings.port,
            ", ".join(app.device_page.models.workloads),
        )  # fmt: skip
    try:
        uvicorn_server(app, host=settings.host, port=settings.port, **tls_options).run()
    except SystemExit:  # uvicorn's own exit when the startup failed
        if app.startup_error is None:
            raise
    if app.startup_error is not None:  # a plan mistake found at start: exit 2, one line
        raise app.startup_error from None


@route_app.command("explain")
def explain(
    plan: Annotated[Path, typer.Option("--plan", help="plan.yaml")],
    workload: Annotated[str, typer.Option("--workload", help="Workload name in the plan")],
    privacy: Annotated[str | None, typer.Option(help="public | personal | sensitive")] = None,
    deadline_ms: Annotated[float | None, typer.Option(help="Time left for the request")] = None,
    urgency: Annotated[str | None, typer.Option(help="interactive | deferrable")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Print the route a request would take and why each tier was kept or skipped,
    and which output each stage reads its scores from (checked against local
    model files).
    """
    from tierwise.planfile.load import load_plan
    from tierwise.router.explain import route_explain, stage_outputs
    from tierwise.router.meta import meta_from_parameters

    given = {"privacy": privacy, "deadline_ms": deadline_ms, "urgency": urgency}
    meta = meta_from_parameters(
        {k: v for k, v in given.items() if v is not None},
        default_workload=workload,
        received_s=0.0,
    )
    route, text = route_explain(
        plan, workload, privacy=meta.privacy, deadline_ms=meta.deadline_ms, urgency=meta.urgency
    )
    if as_json:
        print_json(
            {
                "workload": route.workload,
                "route": list(route.tiers),
                "decisions": [
                    {"tier": d.tier, "kept": d.kept, "reason": d.reason, "cause": d.cause}
                    for d in route.decisions
                ],
                "stages": [
                    o.to_dict() for o in stage_outputs(load_plan(plan, check_files=False), workload)
                ],
                "defer_until_s": route.defer_until_s,
                "defer_reason": route.defer_reason,
                "degraded": route.degraded,
            }
        )
    else:
        out_console.print(text, markup=False, highlight=False, soft_wrap=True)
