"""``tierwise bench``: measure variants here (``profile``) or through a live tier
(``endpoint``) and write ``profiles.json`` for the planner.

Both verbs time each input at the shape the model really sees: samples of ``--eval``, or
``--input-shape NAME=D1,D2,...`` (the shape without the batch dimension when the model has
one; the full shape is accepted too), or the model's own shape when it is concrete apart
from the batch dimension. A model with other dynamic dimensions and neither is refused
(exit 2, naming the input, its dimensions and the flag to add); ``profiles.json`` records
the shapes timed and where they came from.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tierwise.cli.bench_args import (
    parse_batch_sizes,
    parse_input_shapes,
    parse_model_files,
    parse_power,
    parse_rapl,
)
from tierwise.cli.common import err_console, out_console, print_json
from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.bench.energy import RaplChoice
    from tierwise.bench.evalset import EvalSet
    from tierwise.bench.measure import MeasureSettings
    from tierwise.bench.profiles import ProfileSet, TimedInput
    from tierwise.spec.tiers import PowerModel

__all__ = ["bench_app", "parse_batch_sizes", "parse_input_shapes", "parse_model_files"]

bench_app = typer.Typer(
    help="Measure variants (latency per batch size, throughput, memory, accuracy) into "
    "profiles.json, here or through a live tier.",
    no_args_is_help=True,
)

_BATCH_HELP = "Batch sizes to measure, comma-separated."
_TIER_HELP = (
    "A spec tier whose hardware this machine is (repeatable); the planner then uses these "
    "measurements for it instead of scaling a host profile by the tier's speed_factor."
)


_SHAPE_HELP = (
    "NAME=D1,D2,... : the shape to time input NAME at (repeatable), without the batch "
    "dimension when the model has one (x=3,48,192 for x [N, 3, H, W]; the full shape "
    "1,3,48,192 is accepted too, --batch sets its first entry). Needed for inputs with "
    "dynamic dimensions besides the batch, unless --eval gives samples."
)
_EVAL_HELP = (
    "An npz of held-out samples: one array [N, ...] per model input, named as the input "
    "(a single-input model takes one array under any name), plus optional labels [N] "
    "(labels or y) for the accuracy. The calls timed carry these samples."
)

_ENDPOINT_TIER_HELP = (
    "The spec tier this endpoint is (repeatable); the planner then uses these measurements, "
    "network included, for it instead of scaling a host profile by the tier's speed_factor."
)


def _settings(
    batch: str,
    runs: int,
    warmup: int,
    max_seconds: float,
    *,
    power: PowerModel | None = None,
    rapl: RaplChoice = "off",
) -> MeasureSettings:
    from tierwise.bench.measure import MeasureSettings

    if runs < 1:
        raise typer.BadParameter("expected a whole number >= 1", param_hint="--runs")
    if warmup < 0:
        raise typer.BadParameter("expected a whole number >= 0", param_hint="--warmup")
    if not max_seconds > 0:
        raise typer.BadParameter("expected a number > 0", param_hint="--max-seconds")
    return MeasureSettings(
        batch_sizes=parse_batch_sizes(batch),
        runs=runs,
        warmup_runs=warmup,
        max_seconds_per_batch=max_seconds,
        power=power,
        rapl=rapl,
    )


def _eval_set(path: Path) -> EvalSet:
    from tierwise.bench.evalset import EvalSet

    try:
        return EvalSet.load(path)
    except ConfigError as exc:
        message = f"expected {exc.expected}, got {exc.got}"
        raise typer.BadParameter(message, param_hint="--eval") from exc


def _table(profiles: ProfileSet, title: str) -> Table:
    table = Table(title=title)
    columns = ("variant", "provider", "batch", "p50 ms", "p95 ms", "p99 ms", "rows/s")
    energy = any(p.energy_source for p in profiles.profiles)
    for column in (*columns, "peak MiB", "accuracy", *(("J/inference",) if energy else ())):
        table.add_column(column, justify="left" if column in ("variant", "provider") else "right")
    for p in profiles.profiles:
        for i, b in enumerate(p.batches):
            first = i == 0
            joules = b.energy_j_per_inference
            figure = "-" if joules is None else f"{joules:.3g} {p.energy_source}"
            extra = (figure,) if energy else ()
            table.add_row(
                p.variant if first else "",
                p.provider.removesuffix("ExecutionProvider") if first else "",
                str(b.batch_size),
                f"{b.p50_ms:.3f}",
                f"{b.p95_ms:.3f}",
                f"{b.p99_ms:.3f}",
                f"{b.throughput_per_s:,.0f}",
                "-" if not first or p.peak_memory_mib is None else f"{p.peak_memory_mib:.1f}",
                "-" if not first or p.accuracy is None else f"{p.accuracy * 100:.2f}%",
                *extra,
            )
    return table


_SOURCES = {"eval": "--eval", "flag": "--input-shape", "signature": "the model"}


def _shape(timed: TimedInput) -> str:
    dims = ", ".join(["N", *map(str, timed.shape)] if timed.batched else map(str, timed.shape))
    return f"{timed.name} [{dims}] (from {_SOURCES[timed.source]})"


def _emit(profiles: ProfileSet, out: Path | None, as_json: bool, title: str) -> None:
    from tierwise.bench.profiles import save_profiles

    if out is not None:
        save_profiles(profiles, out)
    if as_json:
        print_json(profiles.to_dict())
        return
    out_console.print(_table(profiles, title))
    timed: dict[str, str] = {}
    for p in profiles.profiles:
        timed.setdefault(p.variant, "; ".join(_shape(t) for t in p.inputs or ()))
    for variant, shapes in timed.items():
        out_console.print(f"{variant} timed at {shapes}", soft_wrap=True, markup=False)
    if out is not None:
        out_console.print(f"wrote {out}", soft_wrap=True)


@bench_app.command("profile")
def profile(
    zoo: Annotated[
        Path | None, typer.Option("--zoo", help="A folder made by `tierwise zoo build`.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="[VARIANT=]FILE.onnx to measure (repeatable)."),
    ] = None,
    batch: Annotated[str, typer.Option("--batch", help=_BATCH_HELP)] = "1,8,32,64",
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="Execution provider (cpu, cuda, ...); repeatable. Default: cpu, "
            "and cuda when available.",
        ),
    ] = None,
    eval_file: Annotated[
        Path | None,
        typer.Option("--eval", help=_EVAL_HELP + " Default with --zoo: its held-out split."),
    ] = None,
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help=_SHAPE_HELP)
    ] = None,
    spec_model: Annotated[
        str | None, typer.Option(help="The fleet spec's model these variants belong to.")
    ] = None,
    hardware: Annotated[
        str | None, typer.Option(help="A label for this machine's hardware (pi5, laptop...).")
    ] = None,
    tier: Annotated[list[str] | None, typer.Option("--tier", help=_TIER_HELP)] = None,
    runs: Annotated[int, typer.Option(help="Timed calls per batch size.")] = 200,
    warmup: Annotated[int, typer.Option(help="Untimed calls before each batch size.")] = 10,
    max_seconds: Annotated[float, typer.Option(help="Stop timing a batch size after this.")] = 2.0,
    idle_watts: Annotated[
        float | None,
        typer.Option("--idle-watts", help="Power model: this machine's draw when idle."),
    ] = None,
    active_watts: Annotated[
        float | None,
        typer.Option(
            "--active-watts",
            help="Power model: this machine's draw while a model computes; energy per "
            "inference is estimated from it where no RAPL counter is readable.",
        ),
    ] = None,
    rapl: Annotated[
        str,
        typer.Option("--rapl", help="RAPL counters: auto (/sys/class/powercap), off, or a folder."),
    ] = "auto",
    out: Annotated[Path | None, typer.Option("-o", "--out", help="profiles.json to write.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Measure each variant with each execution provider on this machine.

    Per batch size: latency p50/p95/p99 (after warm-up) and rows/s; per variant:
    peak memory (the model's, not the eval set's), and accuracy on the zoo's
    held-out split (or --eval). Inputs are timed at the shapes of --eval or
    --input-shape; a model with dynamic dimensions besides the batch needs one
    of them.

    Energy per inference: measured by RAPL where readable (--rapl), else
    estimated as --active-watts x mean call time / rows; absent with neither.
    """
    from tierwise.bench.host import host_info
    from tierwise.bench.measure import profile_files, profile_zoo

    if (zoo is None) == (not model):
        raise typer.BadParameter("give either --zoo DIR or --model FILE (repeatable)")
    power = parse_power(idle_watts, active_watts)
    settings = _settings(batch, runs, warmup, max_seconds, power=power, rapl=parse_rapl(rapl))
    shapes = parse_input_shapes(input_shape or [])
    evaluation = _eval_set(eval_file) if eval_file is not None else None
    host = host_info(label=hardware)

    def progress(variant: str, prov: str) -> None:
        if not as_json:
            err_console.print(f"measuring {variant} on {prov} ...")

    if zoo is not None:
        profiles = profile_zoo(
            zoo, model=spec_model, providers=provider, settings=settings,
            eval_data=evaluation, input_shapes=shapes, host=host, tiers=tier or (),
            progress=progress,
        )  # fmt: skip
    else:
        files = parse_model_files(model or [])
        profiles = profile_files(
            files, model=spec_model, providers=provider, settings=settings,
            eval_data=evaluation, input_shapes=shapes, host=host, tiers=tier or (),
            progress=progress,
        )  # fmt: skip
    _emit(profiles, out, as_json, f"profiles measured on {host.hostname} ({host.cpu_model})")


@bench_app.command("endpoint")
def endpoint(
    url: Annotated[str, typer.Argument(help="The tier's V2 base URL, e.g. http://edge:8000.")],
    model: Annotated[str, typer.Option("--model", help="The model's name on the endpoint.")],
    variant: Annotated[
        str | None, typer.Option(help="The spec variant it serves (default: the model name).")
    ] = None,
    spec_model: Annotated[
        str | None, typer.Option(help="The fleet spec's model it belongs to.")
    ] = None,
    batch: Annotated[str, typer.Option("--batch", help=_BATCH_HELP)] = "1,8,32,64",
    concurrency: Annotated[
        int, typer.Option(min=1, help="Callers in the closed-loop throughput run.")
    ] = 4,
    zoo: Annotated[
        Path | None,
        typer.Option("--zoo", help="Send the zoo's held-out rows (and measure accuracy)."),
    ] = None,
    eval_file: Annotated[Path | None, typer.Option("--eval", help=_EVAL_HELP)] = None,
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help=_SHAPE_HELP)
    ] = None,
    auth_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the Authorization header.")
    ] = None,
    timeout_s: Annotated[float, typer.Option(help="Per-request timeout.")] = 5.0,
    tier: Annotated[list[str] | None, typer.Option("--tier", help=_ENDPOINT_TIER_HELP)] = None,
    runs: Annotated[int, typer.Option(help="Timed calls per batch size.")] = 200,
    warmup: Annotated[int, typer.Option(help="Untimed calls before each batch size.")] = 10,
    max_seconds: Annotated[float, typer.Option(help="Stop timing a batch size after this.")] = 2.0,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="profiles.json to write.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Profile a live V2 tier end to end, network included (any V2 server).

    Latency percentiles from one caller at a time, throughput from --concurrency
    callers. Inputs are timed at the shapes of --eval (or --zoo) or
    --input-shape; a model with dynamic dimensions besides the batch needs one
    of them.
    """
    from tierwise.bench.endpoint import profile_endpoint, profile_endpoint_set
    from tierwise.bench.evalset import EvalSet
    from tierwise.zoo import load_eval

    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"expected an http:// or https:// URL, got {url!r}")
    if zoo is not None and eval_file is not None:
        raise typer.BadParameter("give --zoo DIR or --eval FILE, not both")
    settings = _settings(batch, runs, warmup, max_seconds)
    shapes = parse_input_shapes(input_shape or [])
    evaluation = _eval_set(eval_file) if eval_file is not None else None
    if zoo is not None:
        evaluation = EvalSet.from_pair(*load_eval(zoo), source=f"{zoo}/eval.npz")
    authorization = None
    if auth_env is not None:
        authorization = os.environ.get(auth_env)
        if not authorization:
            raise typer.BadParameter(f"the environment variable {auth_env} is not set")
    measured = asyncio.run(
        profile_endpoint(
            url, model, variant=variant, spec_model=spec_model, settings=settings,
            concurrency=concurrency, eval_data=evaluation, input_shapes=shapes,
            timeout_s=timeout_s, authorization=authorization,
        )
    )  # fmt: skip
    profiles = profile_endpoint_set(
        [measured], settings=settings, concurrency=concurrency, tiers=tier or ()
    )
    _emit(profiles, out, as_json, f"{model} at {url}, network included")
