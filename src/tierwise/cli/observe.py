"""``tierwise observe``: render the dashboard, alerts and scrape config of a plan, and
show the fleet's state."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import JsonOpt, out_console, print_json
from tierwise.errors import ConfigError

__all__ = ["observe_app"]

observe_app = typer.Typer(
    help="Watch the fleet: `render` writes a Grafana dashboard, Prometheus alerting rules "
    "and a scrape config for a plan; `status` shows the fleet's state from Prometheus or "
    "straight from the tiers' /metrics.",
    no_args_is_help=True,
)

PlanOpt = Annotated[
    Path | None, typer.Option("--plan", help="plan.yaml: its tiers, workloads and SLOs.")
]
SettingsOpt = Annotated[
    Path | None,
    typer.Option("--settings", help="YAML of intervals and alert thresholds (tierwise."
                 "observe.settings); every field has a default."),
]  # fmt: skip
GatewayOpt = Annotated[
    list[str] | None,
    typer.Option("--gateway", help="URL of a gateway (or an agent's gateway port) to "
                 "scrape; repeatable."),
]  # fmt: skip


@observe_app.command()
def render(
    plan: Annotated[Path, typer.Option("--plan", help="plan.yaml to render for.")],
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            help="Folder for dashboard.json, alerts.yml, prometheus.yml and targets.json.",
        ),
    ],
    settings: SettingsOpt = None,
    gateway: GatewayOpt = None,
    agent: Annotated[
        list[str] | None, typer.Option("--agent", help="URL of an edge agent; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the Grafana dashboard, the alerting rules (with the plan's SLOs), the
    Prometheus config and its file-discovery targets for PLAN into OUT. Run Prometheus
    with `prometheus --config.file OUT/prometheus.yml`; import OUT/dashboard.json in
    Grafana."""
    from tierwise.observe import load_observe_settings, render_plan, write_rendered
    from tierwise.planfile.load import load_plan

    loaded = load_plan(plan, check_files=False)  # the models are not run here
    rendered = render_plan(
        loaded, load_observe_settings(settings), gateways=gateway or (), agents=agent or ()
    )
    written = write_rendered(rendered, out)
    if as_json:
        print_json({
            "files": {p.name: str(p) for p in written},
            "alerts": [r.alert for r in rendered.rules],
            "slos": {n: s.p99_s for n, s in rendered.slos.items()},
            "targets": [{"address": t.address, "job": t.job, "tier": t.tier}
                        for t in rendered.targets],
        })  # fmt: skip
        return
    out_console.print(
        f"wrote {', '.join(p.name for p in written)} to {out} "
        f"({len(rendered.rules)} alerts, {len(rendered.targets)} targets)"
    )


@observe_app.command()
def status(
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus' URL to read from.")
    ] = None,
    plan: PlanOpt = None,
    gateway: GatewayOpt = None,
    settings: SettingsOpt = None,
    sample_s: Annotated[
        float,
        typer.Option(
            "--sample-s",
            help="Without --prometheus: seconds between the "
            "two scrapes that give requests per second.",
        ),
    ] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Show the fleet's state: per workload requests/s, p99 against SLO, fallback rate and
    cost per 1M; per tier requests/s, energy per inference, power and drift; the outbox,
    the breakers and (from Prometheus) the alerts. Read from --prometheus, or straight from
    the plan's tiers and the gateways given (--plan, --gateway). Targets that do not answer
    are shown as down."""
    from tierwise.observe import (
        PrometheusSource,
        SnapshotSource,
        gather_status,
        load_observe_settings,
        plan_targets,
        status_view,
        workload_slos,
    )
    from tierwise.planfile.load import load_plan

    if prometheus is None and plan is None and not gateway:
        raise ConfigError("--prometheus/--plan", "a Prometheus URL, or a plan (and gateways)")
    loaded = load_plan(plan, check_files=False) if plan is not None else None
    slos = workload_slos(loaded) if loaded is not None else {}
    config = load_observe_settings(settings)
    if prometheus is not None:
        with PrometheusSource(prometheus, window_s=config.rate_window_s) as source:
            fleet = gather_status(source, slos)
    else:
        targets = plan_targets(loaded, gateway or ())
        fleet = gather_status(SnapshotSource(targets, sample_s=sample_s), slos)
    if as_json:
        print_json(fleet.to_json())
        return
    out_console.print(status_view(fleet))
