"""``tierwise plan``: where each workload should run.

``tierwise plan SPEC --profiles profiles.json -o plan.yaml`` places every workload's
traffic at least cost (``tierwise plan solve``, the default); ``tierwise plan matrix SPEC``
scores every workload on every tier across the playbook's six drivers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core
from rich.table import Table

from tierwise.cli.common import out_console, print_json

if TYPE_CHECKING:
    from tierwise.bench.profiles import ProfileSet
    from tierwise.plan.matrix import DecisionMatrix, WorkloadScores
    from tierwise.spec import FleetSpec

__all__ = ["DefaultCommandGroup", "load_profile_sets", "plan_app"]


class DefaultCommandGroup(typer.core.TyperGroup):
    """A group whose first argument may be a subcommand or, when it is not one, the
    arguments of ``default_command`` (``tierwise plan SPEC`` = ``tierwise plan solve SPEC``)."""

    default_command = "solve"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own Context
        first = args[0] if args else None
        known = self.commands
        if (
            first is not None
            and self.default_command in known
            and first not in known
            and first not in ctx.help_option_names
        ):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


plan_app = typer.Typer(
    cls=DefaultCommandGroup,
    no_args_is_help=True,
    help="Decide where each workload runs.\n\n"
    "tierwise plan SPEC --profiles profiles.json [-o plan.yaml]: place every workload's "
    "traffic on tiers and variants at least cost (a mixed-integer program) within its SLO, "
    "privacy and residency, capacity and budget, and write the router's plan.yaml "
    "(the same as `tierwise plan solve`).\n\n"
    "tierwise plan matrix SPEC [--profiles profiles.json]: score every workload on every "
    "tier across the six drivers (latency, privacy, throughput, memory, cost, operations), "
    "with reasons, hard constraints and a ranked recommendation.",
)

_PROFILES_HELP = "profiles.json from `tierwise bench profile` / `bench endpoint` (repeatable)."
_SYMBOL = {None: "✗"}


def load_profile_sets(paths: list[Path] | None) -> tuple[list[ProfileSet], list[str]]:
    """The profile sets at ``paths`` and their file names (ProfileError when unreadable)."""
    from tierwise.bench.profiles import load_profiles

    files = [str(p) for p in paths or []]
    return [load_profiles(f) for f in files], files


def _load(spec_path: Path, profiles: list[Path] | None) -> tuple[FleetSpec, Any]:
    from tierwise.plan.perf import ProfileCatalog
    from tierwise.spec import load_spec

    spec = load_spec(spec_path)
    sets, files = load_profile_sets(profiles)
    return spec, ProfileCatalog(spec, sets, files) if sets else None


def _matrix_table(row: WorkloadScores, drivers: tuple[str, ...]) -> Table:
    recommended = row.recommended or "none: no tier is feasible"
    table = Table(title=f"{row.workload}: recommended {recommended}", show_lines=True)
    table.add_column("tier")
    for driver in drivers:
        weight = row.weights[driver]
        table.add_column(f"{driver} x{weight:g}" if weight != 1 else driver)
    table.add_column("total", justify="right")
    table.add_column("rank", justify="right")
    for tier in row.tiers:
        name = tier.tier + ("" if tier.listed else "\n(not listed)")
        cells = []
        for driver in drivers:
            cell = tier.cells[driver]
            mark = "[red]✗[/red]" if cell.score is None else f"[bold]{cell.score}[/bold]"
            cells.append(f"{mark} {cell.reason}")
        total = "infeasible" if tier.total is None else f"{tier.total:.2f}"
        rank = "-" if tier.rank is None else str(tier.rank)
        style = "green" if tier.tier == row.recommended else None
        table.add_row(name, *cells, total, rank, style=style)
    return table


def print_matrix(matrix: DecisionMatrix) -> None:
    """The matrix as one rich table per workload."""
    for row in matrix.workloads:
        out_console.print(_matrix_table(row, matrix.drivers))
    if not matrix.profiled:
        out_console.print(
            "no profiles given: latency counts the network only and throughput is unknown "
            "(tierwise bench profile, then --profiles)"
        )


@plan_app.command("matrix")
def matrix(
    spec: Annotated[Path, typer.Argument(help="The fleet spec (YAML).")],
    profiles: Annotated[list[Path] | None, typer.Option("--profiles", help=_PROFILES_HELP)] = None,
    workload: Annotated[str | None, typer.Option(help="Show only this workload.")] = None,
    max_utilization: Annotated[
        float, typer.Option(help="Headroom: the busiest hour may use this fraction of a tier.")
    ] = 0.7,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Score every workload on every tier across the six drivers, with reasons.

    Each cell scores 1 (poor) to 5 (best) or marks a hard constraint (✗) with why; tiers
    are ranked by the weighted total and the first is recommended.
    """
    from tierwise.plan.matrix import decision_matrix
    from tierwise.plan.settings import PlanSettings

    if not 0 < max_utilization <= 1:
        raise typer.BadParameter("expected a fraction in (0, 1]", param_hint="--max-utilization")
    fleet, catalog = _load(spec, profiles)
    if workload is not None and workload not in fleet.workloads:
        raise typer.BadParameter(
            f"expected one of {', '.join(fleet.workloads)}, got {workload!r}",
            param_hint="--workload",
        )
    result = decision_matrix(fleet, catalog, settings=PlanSettings(max_utilization=max_utilization))
    if workload is not None:
        result = type(result)(result.drivers, [result.workload(workload)], result.profiled)
    if as_json:
        print_json(result.to_dict())
    else:
        print_matrix(result)
