"""``tierwise gateway`` and ``tierwise route explain``: the router as an HTTP front, and
what it would do with one request."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import out_console, print_json

__all__ = ["gateway", "route_app"]

route_app = typer.Typer(help="Inspect how requests are routed.", no_args_is_help=True)


def gateway(
    plan: Annotated[Path, typer.Option("--plan", help="plan.yaml: tiers and cascades")],
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8080,
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
    log_json: Annotated[bool, typer.Option("--log-json", help="Logs as JSON lines")] = False,
) -> None:
    """Serve a V2 HTTP front that routes every request through the plan's cascade.

    At start it checks each cascade stage's score output (``output:``,
    ``scores:``) against its tier's model (a local model's signature, a remote's
    GET /v2/models/M) and refuses a plan naming an output the model lacks or one
    that holds no scores.
    """
    from tierwise.planfile.load import load_plan
    from tierwise.router.build import build_router
    from tierwise.router.gateway import Gateway, GatewaySettings
    from tierwise.router.settings import RouterSettings
    from tierwise.server.app import uvicorn_server
    from tierwise.server.logs import configure_logging
    from tierwise.telemetry.sampling import JsonlSink

    loaded = load_plan(plan)
    settings = GatewaySettings(host=host, port=port, outbox_path=outbox)
    # The environment is read here, at the edge: tiers name the variables holding their
    # Authorization headers and get only those values.
    sink = JsonlSink(samples, max_bytes=256 * 1024 * 1024) if samples is not None else None
    router_settings = RouterSettings(hedge_after_ms=hedge_after_ms)
    router = build_router(loaded, env=dict(os.environ), settings=router_settings, samples=sink)
    configure_logging("info", json_lines=log_json)
    app = Gateway(loaded, router, settings)
    try:
        uvicorn_server(app, host=host, port=port).run()
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
