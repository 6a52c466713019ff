"""``tierwise demo``: the whole story on this machine, from the model family to the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tierwise.cli.common import out_console, print_json

if TYPE_CHECKING:
    from tierwise.demo import DemoSettings, StoryResult
    from tierwise.report import SummaryTable

__all__ = ["RichProgress", "demo"]


class RichProgress:
    """Progress bars for the demo's steps: one line per step, left on screen when done."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, tuple[TaskID, str]] = {}

    def begin(self, step: str, description: str, total: int | None) -> None:
        task = self.progress.add_task(f"{step}: {description}", total=total, status="")
        self.tasks[step] = (task, description)

    def advance(self, step: str, amount: int = 1) -> None:
        self.progress.advance(self.tasks[step][0], amount)

    def end(self, step: str, outcome: str) -> None:
        task, _ = self.tasks[step]
        total = self.progress.tasks[task].total
        self.progress.update(task, total=total or 1, completed=total or 1, status=outcome)


def _progress(quiet: bool) -> Progress:
    return Progress(
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[status]}"),
        console=out_console,
        disable=quiet,
    )


def _table(summary: SummaryTable) -> Table:
    table = Table(
        title=summary.title,
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    for i, column in enumerate(summary.columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in summary.rows:
        table.add_row(*row)
    return table


def _comparison(result: StoryResult) -> str | None:
    """``the plan's cascade: X% of cloud only's cost, accuracy A vs B`` for the main workload."""
    from tierwise.demo import MAIN_WORKLOAD

    by_name = {r.workload: r for r in result.replay}
    plan = by_name.get(MAIN_WORKLOAD)
    cloud = next((r for r in result.replay if r.workload.endswith("-cloud-only")), None)
    if plan is None or cloud is None or cloud.usd_per_million <= 0:
        return None
    share = plan.usd_per_million / cloud.usd_per_million
    return (
        f"{MAIN_WORKLOAD}: the plan ({plan.route}) costs {share:.1%} of cloud only at "
        f"{plan.accuracy:.2%} accuracy against {cloud.accuracy:.2%}"
    )


def _fidelity_table(doc: dict[str, Any]) -> Table:
    """Predicted (simulated) beside measured (live), per level and workload."""
    from tierwise.report.simulation import share_text

    table = Table(
        title=doc.get("title"), box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
        pad_edge=False,
    )  # fmt: skip
    for column in ("level", "workload", "n", "p50 sim/live", "p99 sim/live",
                   "dev/edge/cloud % sim/live", "USD/1M sim/live", "ok"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("level", "workload") else "right")

    for row in doc["rows"]:
        p, m = row["predicted"], row["measured"]
        misses = [k for k, ok in row["within"].items() if not ok]
        table.add_row(
            row["level"], row["workload"], str(row["requests"]),
            f"{p['p50_ms']:.3g}/{m['p50_ms']:.3g}", f"{p['p99_ms']:.3g}/{m['p99_ms']:.3g}",
            f"{share_text(p)} / {share_text(m)}",
            f"{p['usd_per_million']:.3g}/{m['usd_per_million']:.3g}",
            "[green]yes" if not misses else "[red]no: " + ", ".join(misses),
        )  # fmt: skip
    return table


def demo(
    zoo_dir: Annotated[
        Path, typer.Option(help="Where the model family is built and cached.")
    ] = Path(".tierwise/zoo"),
    work_dir: Annotated[
        Path, typer.Option(help="Where profiles, calibration, plan and report are written.")
    ] = Path(".tierwise/demo"),
    seed: Annotated[int, typer.Option(help="Seed for the model family.")] = 0,
    requests: Annotated[
        int | None,
        typer.Option(min=1, help="Replay only the first N held-out rows per route (default all)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Redo every step, cached or not.")] = False,
    network: Annotated[
        bool,
        typer.Option(
            help="Reach the edge and cloud tiers through emulated links with the plan's "
            "round trips (--no-network: straight over loopback)."
        ),
    ] = True,
    fidelity: Annotated[
        bool,
        typer.Option(
            help="Also check the simulator against the live fleet: the same seeded requests "
            "at a light load, near the edge's capacity and through a cloud partition, "
            "predicted beside measured."
        ),
    ] = False,
    fidelity_seconds: Annotated[
        float, typer.Option(min=2.0, max=3600.0, help="Seconds of traffic per fidelity level.")
    ] = 30.0,
    serve: Annotated[
        bool,
        typer.Option(
            help="Then keep the fleet running behind a gateway that serves the device page "
            "(the device tier in the browser) until Ctrl-C."
        ),
    ] = False,
    serve_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The gateway's port with --serve.")
    ] = 8080,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """The story end to end: build the model family, profile it, calibrate the cascade,
    plan the parcel hub's fleet, start its edge and cloud tiers on loopback behind links
    with the plan's round trips, replay the held-out split through tierwise.Client,
    simulate a bad day of the fleet (with --fidelity, check the simulator against the live
    fleet), and write the report. With --serve, the fleet then stays up behind a gateway
    whose /device/ page runs the device tier in the browser.

    Steps whose inputs have not changed since the last run are skipped.
    """
    from tierwise.demo import DemoSettings, run

    if serve:  # before the story: a busy port should not wait for the demo's end
        _check_port(serve_port)
    settings = DemoSettings(
        zoo_dir=zoo_dir, work_dir=work_dir, seed=seed, requests=requests, force=force,
        network=network, fidelity=fidelity, fidelity_seconds=fidelity_seconds,
    )  # fmt: skip
    started = time.monotonic()
    with _progress(as_json) as progress:
        result = run(settings, RichProgress(progress))
    elapsed = time.monotonic() - started
    if as_json:
        from tierwise.demo.device import device_page_url, serve_device_page

        doc: dict[str, Any] = result.to_dict() | {"seconds": elapsed}
        print_json(doc | {"device_page": device_page_url(serve_port) if serve else None})
        if serve:
            serve_device_page(settings, serve_port)
        return
    if result.data is not None and result.data.summary is not None:
        out_console.print(_table(result.data.summary))
    line = _comparison(result)
    if line is not None:
        out_console.print(line, soft_wrap=True)
    if result.fidelity is not None:
        out_console.print(_fidelity_table(result.fidelity))
    skipped = [s.step for s in result.steps if s.outcome == "cached"]
    out_console.print(
        f"cached steps skipped: {', '.join(skipped) or 'none'}; total time {elapsed:.1f} s",
        soft_wrap=True,
    )
    if result.report is not None:
        out_console.print(f"report: {result.report.page}", soft_wrap=True)
    _device_page(settings, serve, serve_port)


def _check_port(port: int) -> None:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise typer.BadParameter(
                f"port {port} on 127.0.0.1 cannot be used ({exc.strerror}); pick another",
                param_hint="--serve-port",
            ) from exc


def _device_page(settings: DemoSettings, serve: bool, port: int) -> None:
    """Serve the device page (--serve), or say how."""
    from tierwise.demo.device import device_page_url, serve_device_page

    if not serve:
        out_console.print(
            f"device tier in the browser: tierwise demo --serve, then open {device_page_url(port)}",
            soft_wrap=True,
        )
        return

    def ready(url: str) -> None:
        out_console.print(f"device page: {url} (Ctrl-C stops the fleet)", soft_wrap=True)

    serve_device_page(settings, port, ready)
