"""``tierwise drift``: make a drift reference for a model and check data against one.

``drift reference MODEL.onnx --inputs DATA.npz -o reference.json`` runs the model on its
evaluation data and writes what the tier server's drift monitor compares traffic with
(put it beside the model as ``reference.json``; a bundle made from that folder carries
it). ``drift check REFERENCE --inputs DATA.npz --model MODEL.onnx`` compares a batch of
data with it the way the monitor does and prints each score and the level.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table

from tierwise.cli.common import EXIT_FAILURE, JsonOpt, out_console, print_json
from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.telemetry.drift import DriftMonitor

__all__ = ["drift_app"]

drift_app = typer.Typer(
    help="Drift references for your own models, and checks of data against them.",
    no_args_is_help=True,
)

_LEVELS = ("ok", "warn", "alert")
_MIN_ROWS = 20  # the smallest window DriftSettings accepts

InputsOpt = Annotated[
    Path,
    typer.Option(
        "--inputs",
        help="An .npz of input arrays, rows first: one array for a one-input model, else "
        "one per model input, named as the model's inputs.",
    ),
]


def load_inputs(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (no pickles); ConfigError naming the file when it is
    missing, not an npz, or empty."""
    if not path.is_file():
        raise ConfigError("--inputs", "an existing .npz file", str(path))
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: np.asarray(archive[name]) for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(
            "--inputs", "an .npz file of numeric arrays (numpy.savez)", str(exc)
        ) from exc
    if not arrays:
        raise ConfigError("--inputs", "an .npz file with at least one array", str(path))
    return arrays


def _feeds(arrays: dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


@drift_app.command("reference")
def reference(
    model: Annotated[Path, typer.Argument(help="The ONNX model.")],
    inputs: InputsOpt,
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Where to write the reference JSON.")
    ] = Path("reference.json"),
    output: Annotated[
        str | None,
        typer.Option("--output", help="The output that holds class scores (default: found)."),
    ] = None,
    input_name: Annotated[
        str | None,
        typer.Option("--input-name", help="The input to summarise (default: the only one)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run MODEL on the evaluation inputs and write its drift reference: confidence and
    class frequencies of its answers, summary statistics of one input."""
    from tierwise.zoo.reference import reference_for_model

    made = reference_for_model(model, _feeds(load_inputs(inputs)), output=output,
                               input_name=input_name)  # fmt: skip
    made.save(out)
    data = {
        "reference": str(out),
        "rows": made.rows,
        "input": made.input_name,
        "output": made.output,
        "scores": made.score_kind if made.output else None,
        "classes": made.classes,
    }
    if as_json:
        print_json(data)
        return
    what = f"output {made.output!r} ({made.score_kind}, {made.classes} classes)"
    out_console.print(
        f"{out}: {made.rows} rows of input {made.input_name!r}, "
        + (what if made.output else "inputs only (no score output)"),
        markup=False,
    )


@drift_app.command("check")
def check(
    reference_file: Annotated[Path, typer.Argument(help="A reference.json.")],
    inputs: InputsOpt,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="The ONNX model (needed when the reference has scores)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with status 1 when the level is alert.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare the rows of DATA (and MODEL's answers to them) with the reference, as one
    window of the tier server's drift monitor, and print each score and the level (0 ok,
    1 warn, 2 alert)."""
    from tierwise.telemetry.drift import DriftMonitor, DriftSettings, Reference
    from tierwise.zoo.reference import model_feeds, run_output

    ref = Reference.load(reference_file)
    arrays = load_inputs(inputs)
    outputs: dict[str, np.ndarray] = {}
    if ref.output is not None:
        if model is None:
            raise ConfigError("--model", f"the model, to score inputs for output {ref.output!r}")
        _, feeds = model_feeds(model, _feeds(arrays))
        outputs[ref.output] = run_output(model, feeds, ref.output)
        arrays = feeds
    elif len(arrays) == 1 and ref.input_name not in arrays:
        arrays = {ref.input_name: next(iter(arrays.values()))}
    found = arrays.get(ref.input_name)
    if found is None:
        raise ConfigError("--inputs", f"an array for the input {ref.input_name!r}", sorted(arrays))
    rows = int(found.shape[0]) if found.ndim else 0
    if rows < _MIN_ROWS:
        raise ConfigError("--inputs", f"at least {_MIN_ROWS} rows to compare", rows)
    monitor = DriftMonitor(ref, DriftSettings(window_rows=rows))
    monitor.observe(arrays, outputs)
    if monitor.windows != 1:
        raise ConfigError(
            "--inputs", f"arrays that fit the reference (input {ref.input_name!r})", "no fit"
        )
    _report(monitor, rows, as_json)
    if strict and monitor.level() == 2:
        raise typer.Exit(EXIT_FAILURE)


def _report(monitor: DriftMonitor, rows: int, as_json: bool) -> None:
    scores, pvalues, level = monitor.scores(), monitor.pvalues(), monitor.level()
    if as_json:
        print_json(
            {
                "rows": rows,
                "level": level,
                "status": _LEVELS[level],
                "scores": [
                    {"signal": signal, "test": test, "score": value,
                     "pvalue": pvalues.get((signal, test))}
                    for (signal, test), value in sorted(scores.items())
                ],
            }
        )  # fmt: skip
        return
    table = Table(title=f"drift of {rows} rows: {_LEVELS[level]} (level {level})")
    for column in ("signal", "test", "score", "p-value"):
        table.add_column(column)
    for (signal, test), value in sorted(scores.items()):
        p = pvalues.get((signal, test))
        table.add_row(signal, test, f"{value:.4f}", "" if p is None else f"{p:.3g}")
    out_console.print(table)
