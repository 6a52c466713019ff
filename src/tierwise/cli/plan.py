"""``tierwise plan``: where each workload should run.

``tierwise plan SPEC --profiles profiles.json -o plan.yaml`` places every workload's
traffic at least cost (``tierwise plan solve``, the default); ``tierwise plan matrix SPEC``
scores every workload on every tier across the playbook's six drivers.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core
from rich.table import Table

from tierwise.cli.common import out_console, print_json

if TYPE_CHECKING:
    from tierwise.bench.profiles import ProfileSet
    from tierwise.plan.matrix import DecisionMatrix, WorkloadScores
    from tierwise.plan.result import PlanResult
    from tierwise.plan.views import CostViews
    from tierwise.spec import FleetSpec

__all__ = ["DefaultCommandGroup", "load_profile_sets", "parse_pairs", "plan_app", "print_matrix"]


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
            near = difflib.get_close_matches(first, list(known), n=1, cutoff=0.75)
            if near and not Path(first).exists():  # a mistyped verb, not a spec file
                raise typer.BadParameter(
                    f"no such command or spec file {first!r}; did you mean "
                    f"`tierwise plan {near[0]}`?",
                    param_hint="SPEC",
                )
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
    """The matrix as one rich table per workload, and what its cost figures count."""
    from tierwise.plan.cascade import ALONE_BASIS, SHARE_BASIS

    for row in matrix.workloads:
        out_console.print(_matrix_table(row, matrix.drivers))
    out_console.print(
        f"cost: USD per 1M for {ALONE_BASIS}. 'plan share' is what `tierwise plan` charges"
        f" the workload there: {SHARE_BASIS}."
    )
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


def parse_pairs(items: list[str] | None, option: str, what: str) -> dict[str, str]:
    """``["edge=http://..."]`` -> ``{"edge": "http://..."}``; typer.BadParameter otherwise."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise typer.BadParameter(f"expected TIER={what}, got {item!r}", param_hint=option)
        out[key.strip()] = value.strip()
    return out


def _placements_table(result: PlanResult, spec: FleetSpec) -> Table:
    from tierwise.plan.cascade import SHARE_BASIS

    title = (
        f"plan: ${result.total_usd_per_month:,.2f} per month ({result.status},"
        f" gap {result.mip_gap:.2%}, {result.solve_s:.2f} s)"
    )
    caption = (
        f"$/month, $/1M: {SHARE_BASIS} (tiers below). `tierwise plan matrix` prices each"
        " tier for the workload alone, the tier's fixed cost included."
    )
    table = Table(title=title, caption=caption, caption_justify="left")
    for column in (
        "workload",
        "placement",
        "reach",
        "accuracy",
        "p99 ms",
        "SLO",
        "$/month",
        "$/1M",
    ):
        table.add_column(column, justify="left" if column in ("workload", "placement") else "right")
    for name, p in result.placements.items():
        o = p.option
        table.add_row(
            name,
            o.label,
            " / ".join(f"{s.reach:.0%}" for s in o.stages),
            "-" if o.accuracy is None else f"{o.accuracy:.2%}",
            f"{o.latency_ms['p99']:.3g}",
            f"{spec.workloads[name].slo.p99_ms:g}",
            f"{p.usd_per_month:,.2f}",
            f"{p.usd_per_million:,.4g}",
        )
    return table


def _mib(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def _tiers_table(result: PlanResult) -> Table:
    table = Table(title=f"tiers (idle capacity ${result.idle_usd_per_month:,.2f} per month)")
    columns = ("tier", "kind", "workloads", "peak busy", "MiB/node", "instances", "$/month")
    for column in (*columns, "idle $/month"):
        table.add_column(column, justify="left" if column in ("tier", "kind") else "right")
    for t in result.tiers.values():
        if not t.used:
            continue
        table.add_row(
            t.tier,
            t.kind,
            str(len(t.workloads)),
            f"{t.peak_utilization:.1%}",
            f"{_mib(t.memory_mib)}/{_mib(t.node_memory_mib)}",
            "-" if not t.instances else f"{min(t.instances)}..{max(t.instances)}",
            f"{t.usd_per_month:,.2f}",
            f"{t.idle_usd_per_month:,.2f}",
        )
    return table


def _views_table(views: CostViews) -> Table:
    table = Table(title="USD per 1M inferences if the cloud is bought differently")
    table.add_column("workload")
    for s in views.scenarios:
        table.add_column(s.name.replace(" (", "\n("), justify="right")
    for name in views.baseline.usd_per_million:
        table.add_row(name, *(f"{s.usd_per_million[name]:,.4g}" for s in views.scenarios))
    table.add_row(
        "total $/month", *(f"{s.total_usd_per_month:,.2f}" for s in views.scenarios), style="bold"
    )
    return table


@plan_app.command("solve")
def solve(
    spec: Annotated[Path, typer.Argument(help="The fleet spec (YAML).")],
    profiles: Annotated[list[Path], typer.Option("--profiles", help=_PROFILES_HELP)],
    calibration: Annotated[
        list[Path] | None,
        typer.Option(
            "--calibration",
            help="`tierwise calibrate --json` output: its cascade becomes a placement "
            "(repeatable).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="plan.yaml to write for the router.")
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="TIER=URL of a remote tier's V2 server (repeatable)."),
    ] = None,
    auth_env: Annotated[
        list[str] | None,
        typer.Option("--auth-env", help="TIER=ENV_VAR holding that tier's Authorization header."),
    ] = None,
    zoo: Annotated[
        Path | None, typer.Option("--zoo", help="Where zoo://NAME variant URIs point.")
    ] = None,
    max_utilization: Annotated[
        float, typer.Option(help="Headroom: the busiest hour may use this fraction of a tier.")
    ] = 0.7,
    time_limit_s: Annotated[float, typer.Option(help="Stop the search after this.")] = 10.0,
    gap: Annotated[float, typer.Option(help="Stop within this relative optimality gap.")] = 1e-3,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Place every workload's traffic at least cost; write the router's plan.yaml.

    Placements (a tier and variant, or a calibrated cascade) must meet the workload's SLO
    from the profiles plus network, privacy and residency, memory, min_accuracy and budget;
    tiers must hold their load with headroom. Prints the plan, the tiers and what each
    workload costs per 1M under other cloud purchase mixes.
    """
    from tierwise.plan.calibration import load_calibration
    from tierwise.plan.optimize import plan_fleet
    from tierwise.plan.settings import PlanSettings
    from tierwise.plan.views import cost_views
    from tierwise.plan.write import Endpoint, write_plan
    from tierwise.planfile.load import load_plan

    if not 0 < max_utilization <= 1:
        raise typer.BadParameter("expected a fraction in (0, 1]", param_hint="--max-utilization")
    if not time_limit_s > 0:
        raise typer.BadParameter("expected a number > 0", param_hint="--time-limit-s")
    if not 0 <= gap < 1:
        raise typer.BadParameter("expected a fraction in [0, 1)", param_hint="--gap")
    urls = parse_pairs(endpoint, "--endpoint", "URL")
    auth = parse_pairs(auth_env, "--auth-env", "ENV_VAR")
    fleet, catalog = _load(spec, profiles)
    for name in (*urls, *auth):
        if name not in fleet.tiers:
            raise typer.BadParameter(
                f"expected a tier of the spec ({', '.join(fleet.tiers)}), got {name!r}",
                param_hint="--endpoint" if name in urls else "--auth-env",
            )
    curves = [load_calibration(p) for p in calibration or []]
    settings = PlanSettings(
        max_utilization=max_utilization, time_limit_s=time_limit_s, mip_rel_gap=gap
    )
    result = plan_fleet(fleet, catalog, calibrations=curves, settings=settings)
    views = cost_views(result, fleet)
    written = None
    if out is not None:
        endpoints = {t: Endpoint(url, auth_header_env=auth.get(t)) for t, url in urls.items()}
        written = write_plan(
            result, fleet, out, spec_path=spec, endpoints=endpoints, zoo_dir=zoo,
            profiles=profiles, calibrations=calibration or [],
        )  # fmt: skip
        load_plan(written, check_files=False)
    if as_json:
        print_json(
            {
                "plan": result.to_dict(),
                "cost_views": views.to_dict(),
                "written": None if written is None else str(written),
            }
        )
        return
    out_console.print(_placements_table(result, fleet))
    out_console.print(_tiers_table(result))
    out_console.print(_views_table(views))
    if written is not None:
        out_console.print(f"wrote {written}", soft_wrap=True)
