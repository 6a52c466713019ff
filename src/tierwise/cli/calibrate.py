"""``tierwise calibrate``: sweep each escalation rule's thresholds over the zoo's held-out split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tierwise.cli.common import out_console, print_json

if TYPE_CHECKING:
    from tierwise.router.calibrate import CalibrationResult, RuleCalibration, Setting

__all__ = ["calibrate", "parse_costs"]

_CURVE_ROWS = 10


def parse_costs(items: list[str]) -> dict[str, float]:
    """``["edge=0.00003", ...]`` -> ``{"edge": 3e-05}``; typer.BadParameter when malformed."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not sep or not key.strip() or not math.isfinite(value) or value < 0:
            raise typer.BadParameter(
                f"expected TIER=USD_PER_INFERENCE with USD >= 0 (e.g. edge=0.00003), got {item!r}",
                param_hint="--cost",
            )
        out[key.strip()] = value
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _row(setting: Setting, result: CalibrationResult) -> list[str]:
    cloud = result.cloud_only.cost_usd_per_million
    return [
        " / ".join(f"{t:.4g}" for t in setting.thresholds),
        f"{setting.accuracy * 100:.2f}%",
        " / ".join(f"{r * 100:.1f}%" for r in setting.escalation_rates),
        f"{setting.cost_usd_per_million:.2f}",
        _pct(setting.cost_usd_per_million / cloud if cloud > 0 else None),
    ]


def _curve_table(rule: RuleCalibration, result: CalibrationResult) -> Table:
    curve = list(rule.curve)
    step = max(1, math.ceil(len(curve) / _CURVE_ROWS))
    shown = curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else [])
    if rule.chosen is not None and rule.chosen not in shown:
        shown = sorted([*shown, rule.chosen], key=lambda s: s.cost_usd_per_million)
    table = Table(title=f"rule {rule.rule}: accuracy / cost front ({len(curve)} points)")
    for column in ("thresholds", "accuracy", "escalated", "USD / 1M", "of cloud"):
        table.add_column(column, justify="left" if column == "thresholds" else "right")
    for setting in shown:
        style = "bold green" if setting == rule.chosen else None
        table.add_row(*_row(setting, result), style=style)
    return table


def _summary_table(result: CalibrationResult) -> Table:
    table = Table(
        title=(
            f"cheapest thresholds reaching {result.target_accuracy * 100:.2f}% accuracy "
            f"({result.target_accuracy_relative * 100:g}% of {result.variants[-1]})"
        )
    )
    for column in ("rule", "thresholds", "accuracy", "USD / 1M", "of cloud", "oracle savings"):
        table.add_column(column, justify="left" if column in ("rule", "thresholds") else "right")
    for rule in result.rules.values():
        if rule.chosen is None:
            table.add_row(rule.rule, "target not reached", "-", "-", "-", "-")
            continue
        row = _row(rule.chosen, result)
        table.add_row(rule.rule, row[0], row[1], row[3], row[4], _pct(rule.oracle_savings_captured))
    cloud, oracle = result.cloud_only, result.oracle
    table.add_row(
        f"cloud-only ({result.variants[-1]})",
        "-",
        f"{cloud.accuracy * 100:.2f}%",
        f"{cloud.cost_usd_per_million:.2f}",
        "100.0%",
        "0.0%",
        style="dim",
    )
    table.add_row(
        "oracle",
        "-",
        f"{oracle.accuracy * 100:.2f}%",
        f"{oracle.cost_usd_per_million:.2f}",
        _pct(oracle.cost_usd_per_million / cloud.cost_usd_per_million)
        if cloud.cost_usd_per_million > 0
        else "-",
        "100.0%",
        style="bold",
    )
    return table


def calibrate(
    zoo: Annotated[Path, typer.Option("--zoo", help="A folder made by `tierwise zoo build`.")],
    variants: Annotated[
        str, typer.Option(help="The cascade, cheapest first, comma-separated zoo variants.")
    ] = "tiny,small,large",
    target_accuracy: Annotated[
        float,
        typer.Option(
            max=1.0, help="Accuracy target in (0, 1], relative to the last variant's accuracy."
        ),
    ] = 0.99,
    cost: Annotated[
        list[str] | None,
        typer.Option(
            "--cost",
            help="USD per inference of a stage, by tier kind or variant (e.g. edge=0.00003); "
            "repeatable; overrides --spec. Default device=0, edge=3e-05, cloud=0.0002.",
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            help="Derive stage costs from this fleet spec's cost model (first tier of each kind)."
        ),
    ] = None,
    workload: Annotated[
        str | None, typer.Option(help="The spec workload whose traffic prices the tiers.")
    ] = None,
    cloud_throughput_per_s: Annotated[
        float,
        typer.Option(help="Inferences/s one cloud instance serves (with --spec)."),
    ] = 100.0,
    steps: Annotated[
        int, typer.Option(min=2, help="Evenly spaced thresholds in [0, 1] (plus a fine tail).")
    ] = 101,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Sweep escalation thresholds over the held-out split: accuracy, escalation and cost.

    Prints each rule's accuracy / escalation / cost curve, the cheapest thresholds that
    reach the target, and the oracle bound.
    """
    from tierwise.router.calibrate import calibrate as run_calibration
    from tierwise.router.calibrate import threshold_grid

    if target_accuracy <= 0.0:
        raise typer.BadParameter("expected a fraction in (0, 1]", param_hint="--target-accuracy")
    if not cloud_throughput_per_s > 0.0:
        raise typer.BadParameter("expected a number > 0", param_hint="--cloud-throughput-per-s")
    names = tuple(v.strip() for v in variants.split(",") if v.strip())
    if not 2 <= len(names) <= 4:
        raise typer.BadParameter(
            "expected 2 to 4 comma-separated variants", param_hint="--variants"
        )
    usd = parse_costs(cost or [])
    known = ("device", "edge", "cloud", *names)
    unknown = sorted(set(usd) - set(known))
    if unknown:
        raise typer.BadParameter(
            f"unknown stage {unknown[0]!r}; expected a tier kind or a variant: {', '.join(known)}",
            param_hint="--cost",
        )
    source = "given" if usd else "default"
    if spec is None and usd:  # the defaults still price the stages not given
        from tierwise.router.calibrate import DEFAULT_USD_PER_INFERENCE
        from tierwise.zoo import load_zoo

        kinds = [load_zoo(zoo).variant(name).tier for name in names]
        if any(n not in usd and k not in usd for n, k in zip(names, kinds, strict=True)):
            source = "given, default for the other stages"
        usd = {**DEFAULT_USD_PER_INFERENCE, **usd}
    if spec is not None:
        from tierwise.router.calibrate_costs import spec_usd_per_inference
        from tierwise.spec import load_spec
        from tierwise.zoo import load_zoo

        kinds = [load_zoo(zoo).variant(name).tier for name in names]
        derived = spec_usd_per_inference(
            load_spec(spec), kinds, workload=workload, cloud_throughput_per_s=cloud_throughput_per_s
        )
        usd = {**derived.usd_per_inference, **usd}
        source = derived.describe(str(spec)) + (" (with --cost overrides)" if cost else "")
    if not as_json:
        out_console.print(f"running {', '.join(names)} over the held-out split of {zoo} ...")
    result = run_calibration(
        zoo,
        variants=names,
        target_accuracy=target_accuracy,
        usd_per_inference=usd or None,
        cost_source=source,
        grid=threshold_grid(steps),
    )
    if as_json:
        print_json(result.to_dict())
        return
    costs = ", ".join(
        f"{v} ({t}) ${c:.3g}"
        for v, t, c in zip(result.variants, result.tiers, result.usd_per_inference, strict=True)
    )
    out_console.print(
        f"{result.samples} samples; USD per inference: {costs} [{result.cost_source}]"
    )
    for rule in result.rules.values():
        out_console.print(_curve_table(rule, result))
    out_console.print(_summary_table(result))
