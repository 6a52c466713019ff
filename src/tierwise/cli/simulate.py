"""``tierwise simulate``: a day of the fleet before it is bought."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from tierwise.cli.common import as_flag, out_console, print_json
from tierwise.settings_errors import config_error

if TYPE_CHECKING:
    from tierwise.sim.load import Simulated

__all__ = ["simulate"]


def _num(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) < 1000:
        return f"{value:.3g}{unit}"
    return f"{value:,.0f}{unit}" if isinstance(value, float) else f"{value:,}{unit}"


def _lines(summary: dict[str, Any]) -> list[str]:
    """Three short lines per workload (readable in an 80-column terminal)."""
    out = []
    for name, doc in summary["workloads"].items():
        t = doc["total"]
        share = "  ".join(f"{k} {t['share'][k]:.1%}" for k in ("device", "edge", "cloud"))
        slo = (
            ""
            if t["slo_p99_ms"] is None
            else (f" (SLO {_num(t['slo_p99_ms'])} ms: {_num(t['slo_misses'])} over)")
        )
        out += [
            f"[bold]{name}[/bold]  {_num(t['requests'])} requests, {_num(t['answered'])} "
            f"answered, {_num(t['failed'])} failed, {_num(t['pending'])} still queued",
            f"  p50 {_num(t['p50_ms'], ' ms')}  p99 {_num(t['p99_ms'], ' ms')}{slo}",
            f"  {share}  degraded {_num(t['degraded'])}  deferred {_num(t['deferred'])}",
            f"  USD {_num(t['usd_per_million'])} per 1M  "
            f"{_num(t['energy_j_per_inference'], ' J')} per answer  "
            f"accuracy {_num(t['accuracy'])}",
        ]
    return out


def _side_by_side(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Each workload's totals in the two runs, one line per figure: first, second."""
    out = ["", "side by side (first | second):"]
    figures = (("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"), ("SLO misses", "slo_misses"),
               ("degraded", "degraded"), ("failed", "failed"), ("USD per 1M", "usd_per_million"),
               ("J per answer", "energy_j_per_inference"))  # fmt: skip
    for name, doc in first["workloads"].items():
        other = second["workloads"].get(name)
        if other is None:
            continue
        a, b = doc["total"], other["total"]
        out.append(f"  {name}")
        for label, key in figures:
            out.append(f"    {label:<14} {_num(a[key]):>12} | {_num(b[key])}")
        for kind in ("device", "edge", "cloud"):
            out.append(
                f"    {kind + ' share':<14} {a['share'][kind]:>12.1%} | {b['share'][kind]:.1%}"
            )
    return out


def _title(summary: dict[str, Any]) -> str:
    from tierwise.sim.results import run_title

    return f"{summary['plan']}, {run_title(summary)}"


def _is_scenario(path: Path) -> bool:
    from tierwise.yaml_limits import load_settings_file

    doc = load_settings_file(path)
    return "events" in doc or "tiers" not in doc


def simulate(
    fleet: Annotated[
        Path | None, typer.Argument(help="Fleet spec (default: the one the plan names).")
    ] = None,
    plan: Annotated[Path | None, typer.Option("--plan", help="plan.yaml to simulate.")] = None,
    profiles: Annotated[
        list[Path] | None,
        typer.Option("--profiles", help="profiles.json (default: the one beside the plan)."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="calibration.json (tierwise calibrate --json): escalate and answer each "
            "request as a held-out row did (default: the plan's measured rates).",
        ),
    ] = None,
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario YAML: partitions, heat, prices.")
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="A second plan or scenario, run on the same seeded traffic beside the first.",
        ),
    ] = None,
    hours: Annotated[float, typer.Option(help="Simulated hours.")] = 24.0,
    start_hour: Annotated[int, typer.Option(help="Local hour the run starts at.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of every random stream.")] = 0,
    traffic_scale: Annotated[
        float, typer.Option(help="Multiply the spec's traffic (a fleet grown N times).")
    ] = 1.0,
    autoscale: Annotated[
        bool,
        typer.Option(
            help="Cloud pools with a ceiling (max_node_count) follow their load; off: sized "
            "for the busiest hour all day."
        ),
    ] = True,
    scale_up_s: Annotated[
        float, typer.Option(help="Seconds from a cloud pool's load rising to its new servers.")
    ] = 120.0,
    scale_down_s: Annotated[
        float, typer.Option(help="Seconds servers no longer needed stay up.")
    ] = 300.0,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Folder to write simulation.json to.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Simulate the fleet under a plan: seeded traffic with the spec's daily shape, routed
    by the live router's own policy through the tiers' queues and links, with the
    scenario's partitions, heat, price changes, bursts and failures. Prints, per workload,
    latency against the SLO, where requests were answered, degraded and deferred work,
    cost per 1M and energy per request (per hour in --json and -o)."""
    from tierwise.errors import ConfigError
    from tierwise.sim.inputs import SimSettings
    from tierwise.sim.load import simulate_files

    if plan is None:
        raise ConfigError("--plan", "the plan.yaml to simulate")
    try:
        settings = SimSettings(hours=hours, start_hour=start_hour, seed=seed,
                               traffic_scale=traffic_scale, autoscale=autoscale,
                               scale_up_s=scale_up_s, scale_down_s=scale_down_s)  # fmt: skip
    except ValidationError as exc:
        raise as_flag(config_error(exc, SimSettings)) from exc

    def run(plan_path: Path, scenario_path: Path | None) -> Simulated:
        return simulate_files(plan_path, spec_path=fleet, profiles=profiles or [],
                              scenario_path=scenario_path, settings=settings,
                              calibration=calibration, keep_requests=False)  # fmt: skip

    runs = [run(plan, scenario)]
    if compare is not None:
        if not compare.is_file():
            raise ConfigError("--compare", "a plan or scenario file (there is no such file)",
                              str(compare))  # fmt: skip
        runs.append(run(plan, compare) if _is_scenario(compare) else run(compare, scenario))
    summaries = [r.summary for r in runs]
    doc: dict[str, Any] = summaries[0] if len(summaries) == 1 else {"runs": summaries}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        import orjson

        (out / "simulation.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if as_json:
        print_json(doc)
        return
    for summary in summaries:
        out_console.print(_title(summary))
        for line in _lines(summary):
            out_console.print(line)
    if len(summaries) == 2:
        for line in _side_by_side(*summaries):
            out_console.print(line, markup=False)
    if out is not None:
        out_console.print(f"wrote {out / 'simulation.json'}")
