"""``tierwise calibrate``: sweep each escalation rule's thresholds over held-out data.

Two ways in. ``--zoo DIR [--variants tiny,small,large]`` runs the digits zoo's variants
over its held-out split. Any other cascade is given stage by stage, cheapest first, in the
order of the flags::

    tierwise calibrate --model NAME=FILE.onnx [--model NAME=FILE.onnx ...] --eval DATA
        [--endpoint NAME=http://HOST:PORT/v2/models/MODEL ...]
        [--output NAME=TENSOR] [--scores NAME=probabilities|logits]
        [--cost NAME=USD] [--target-accuracy A] [--json]

NAME is the variant's name in the fleet spec (``tierwise plan --calibration`` matches on
it); ``--model`` runs an ONNX file here, ``--endpoint`` asks a live V2 tier server (the two
flags make one list: a value whose location starts with ``http://`` or ``https://`` is an
endpoint). DATA is an ``.npz`` with one array per model input (named as the input; a
single-input model may use any name) plus ``labels`` (integer class ids ``[N]``), or a
folder of V2 request bodies (``*.json``) plus ``labels.txt`` (one integer per row, files
in sorted name order) or ``labels.json`` (a list, or file name -> label). Scores are read
from ``--output`` or, as the router picks, ``probabilities`` or the model's only float
``[rows, classes >= 2]`` output; ``--scores NAME=logits`` applies softmax first. Answers
are the model's integer ``label`` output, else the argmax of the scores. The JSON (with
``--json``) is what ``tierwise plan SPEC --calibration`` reads, with per variant the output
and score kind used (``variant_outputs``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tierwise.cli.calibrate_args import parse_costs, parse_stages, stage_sources
from tierwise.cli.common import out_console, print_json

if TYPE_CHECKING:
    from tierwise.calibrate.run import StageSource
    from tierwise.calibrate.sweep import CalibrationResult, RuleCalibration, Setting

__all__ = ["calibrate", "parse_costs", "parse_stages"]

_CURVE_ROWS = 10


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
    zoo: Annotated[
        Path | None, typer.Option("--zoo", help="A folder made by `tierwise zoo build`.")
    ] = None,
    stages: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "--endpoint",
            metavar="NAME=FILE.onnx|NAME=URL",
            help="A stage of the cascade, cheapest first (repeat, 2 to 4 in all): NAME (the "
            "spec's variant) = an ONNX file run here, or the URL of a live V2 model "
            "(http://HOST:PORT/v2/models/MODEL). Needs --eval.",
        ),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            help="Labelled held-out data: an .npz with one array per model input plus "
            "'labels' (int class ids [N]), or a folder of V2 request JSON files plus "
            "labels.txt (one per row, files in sorted order) or labels.json.",
        ),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            metavar="NAME=TENSOR",
            help="The output holding stage NAME's scores (default: 'probabilities', else "
            "the model's only float [rows, classes] output).",
        ),
    ] = None,
    scores: Annotated[
        list[str] | None,
        typer.Option(
            "--scores",
            metavar="NAME=probabilities|logits",
            help="What stage NAME's output holds; logits get a softmax (default probabilities).",
        ),
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            help="With --zoo: the cascade, cheapest first, comma-separated zoo variants "
            "(default tiny,small,large)."
        ),
    ] = None,
    target_accuracy: Annotated[
        float,
        typer.Option(
            max=1.0, help="Accuracy target in (0, 1], relative to the last stage's accuracy."
        ),
    ] = 0.99,
    cost: Annotated[
        list[str] | None,
        typer.Option(
            "--cost",
            help="USD per inference of a stage, by tier kind or variant (e.g. edge=0.00003); "
            "repeatable; overrides --spec. Default device=0, edge=3e-05, cloud=0.0002; "
            "stages given with --model/--endpoint take kinds by position (first device, "
            "last cloud, edge between).",
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
    """Sweep escalation thresholds over held-out data: accuracy, escalation and cost.

    The digits zoo's held-out split (--zoo DIR), or your own cascade (see --model, --eval).

    Prints each rule's curve, the cheapest thresholds reaching the target, the oracle bound.

    --json prints the calibration that `tierwise plan SPEC --calibration` reads.
    """
    if target_accuracy <= 0.0:
        raise typer.BadParameter("expected a fraction in (0, 1]", param_hint="--target-accuracy")
    if not cloud_throughput_per_s > 0.0:
        raise typer.BadParameter("expected a number > 0", param_hint="--cloud-throughput-per-s")
    sources = stage_sources(zoo, stages, eval_data, output, scores, variants)
    if sources is None:
        names = tuple(v.strip() for v in (variants or "tiny,small,large").split(",") if v.strip())
        if not 2 <= len(names) <= 4:
            raise typer.BadParameter(
                "expected 2 to 4 comma-separated variants", param_hint="--variants"
            )
    else:
        names = tuple(s.name for s in sources)
    usd = parse_costs(cost or [])
    known = ("device", "edge", "cloud", *names)
    unknown = sorted(set(usd) - set(known))
    if unknown:
        raise typer.BadParameter(
            f"unknown stage {unknown[0]!r}; expected a tier kind or a variant: {', '.join(known)}",
            param_hint="--cost",
        )

    def kinds() -> list[str]:
        if sources is not None:
            from tierwise.calibrate.run import position_kinds

            return list(position_kinds(len(names)))
        from tierwise.zoo import load_zoo

        found = load_zoo(zoo or Path()).variant
        return [found(name).tier for name in names]

    source = "given" if usd else "default"
    if spec is None and usd:  # the defaults still price the stages not given
        from tierwise.calibrate.sweep import DEFAULT_USD_PER_INFERENCE

        if any(n not in usd and k not in usd for n, k in zip(names, kinds(), strict=True)):
            source = "given, default for the other stages"
        usd = {**DEFAULT_USD_PER_INFERENCE, **usd}
    if spec is not None:
        from tierwise.calibrate.costs import spec_usd_per_inference
        from tierwise.spec import load_spec

        derived = spec_usd_per_inference(
            load_spec(spec), kinds(), workload=workload,
            cloud_throughput_per_s=cloud_throughput_per_s,
        )  # fmt: skip
        usd = {**derived.usd_per_inference, **usd}
        source = derived.describe(str(spec)) + (" (with --cost overrides)" if cost else "")
    result = _run(zoo, sources, eval_data, names, as_json, target_accuracy, usd, source, steps)
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
    read = ", ".join(
        f"{v} {o['output']!r} ({o['scores']})" for v, o in result.variant_outputs.items()
    )
    out_console.print(f"scores read from: {read}", markup=False)
    for rule in result.rules.values():
        out_console.print(_curve_table(rule, result))
    out_console.print(_summary_table(result))


def _run(
    zoo: Path | None,
    sources: list[StageSource] | None,
    eval_data: Path | None,
    names: tuple[str, ...],
    as_json: bool,
    target_accuracy: float,
    usd: dict[str, float],
    source: str,
    steps: int,
) -> CalibrationResult:
    from tierwise.calibrate.sweep import threshold_grid

    grid = threshold_grid(steps)
    if sources is None or eval_data is None:
        from tierwise.calibrate.sweep import calibrate as run_calibration

        if not as_json:
            out_console.print(f"running {', '.join(names)} over the held-out split of {zoo} ...")
        return run_calibration(
            zoo or Path(), variants=names, target_accuracy=target_accuracy,
            usd_per_inference=usd or None, cost_source=source, grid=grid,
        )  # fmt: skip
    from tierwise.calibrate.data import load_eval_data
    from tierwise.calibrate.run import calibrate_stages

    data = load_eval_data(eval_data)
    if not as_json:
        out_console.print(f"running {', '.join(names)} over {data.rows} rows of {eval_data} ...")
    return calibrate_stages(
        sources, data, target_accuracy=target_accuracy, usd_per_inference=usd or None,
        cost_source=source, grid=grid,
    )  # fmt: skip
