"""``tierwise report PLAN -o DIR``: the plan on one HTML page with its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import out_console, print_json
from tierwise.errors import ConfigError

__all__ = ["report"]


def report(
    plan: Annotated[
        Path, typer.Argument(help="plan.yaml written by `tierwise plan` (it links its spec).")
    ],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Folder to write index.html and the plots into.")
    ] = Path("report"),
    profiles: Annotated[
        list[Path] | None,
        typer.Option(
            "--profiles",
            help="profiles.json to show (repeatable); default: those the plan was made from.",
        ),
    ] = None,
    calibration: Annotated[
        list[Path] | None,
        typer.Option(
            "--calibration",
            help="`tierwise calibrate --json` output to show (repeatable); default: those "
            "the plan was made from.",
        ),
    ] = None,
    simulation: Annotated[
        Path | None,
        typer.Option(
            "--simulation",
            help="simulation.json (tierwise simulate -o) to show as the simulation section.",
        ),
    ] = None,
    fidelity: Annotated[
        Path | None,
        typer.Option(
            "--fidelity",
            help="fidelity.json (tierwise demo --fidelity) to show beside the simulation.",
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(help="The page's title.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Write a one-page report of a plan: the decision-matrix heatmap, cost per 1M
    inferences by workload and tier, latency percentiles against SLOs, the cascade's
    accuracy / cost curve with the chosen points and the oracle bound, and (with
    --simulation) a simulated day hour by hour, with a fidelity check's predicted
    against measured latencies (--fidelity).

    The page is self-contained (no network, no scripts): open OUT/index.html.
    """
    from tierwise.report import write_report
    from tierwise.report.load import load_report_data

    data = load_report_data(
        plan, profiles=profiles or (), calibrations=calibration or (), title=title
    )
    if simulation is not None:
        from dataclasses import replace

        from tierwise.report.simulation import load_simulation

        data = replace(data, simulation=load_simulation(simulation, fidelity))
    elif fidelity is not None:
        raise ConfigError("--fidelity", "--simulation beside it (the section shows both)")
    files = write_report(data, out)
    if as_json:
        summary = data.summary
        print_json(
            {
                "page": str(files.page),
                "plots": {k: str(v) for k, v in files.plots.items()},
                "summary": None
                if summary is None
                else [dict(zip(summary.columns, row, strict=True)) for row in summary.rows],
            }
        )
        return
    out_console.print(f"wrote {files.page} ({len(files.plots)} plots)")
