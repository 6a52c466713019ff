"""``tierwise demo``: build the family (cached) and measure every variant on this machine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tierwise.cli.common import out_console, print_json
from tierwise.cli.zoo import build_with_status, variant_rows

if TYPE_CHECKING:
    import numpy as np

    from tierwise.bench import LatencyStats
    from tierwise.runtime import OnnxBackend
    from tierwise.zoo import Zoo

__all__ = ["demo", "measure_variants"]


def _latency(backend: OnnxBackend, batch: np.ndarray, runs: int) -> LatencyStats:
    from tierwise.bench import measure_latency

    feeds = {backend.signature.inputs[0].name: batch}
    return measure_latency(lambda: backend.predict_sync(feeds), runs=runs)


def measure_variants(zoo: Zoo, directory: Path, *, runs: int = 200) -> list[dict[str, Any]]:
    """Accuracy, size and batch-1 / batch-32 latency of every variant, measured here."""
    from tierwise.runtime import OnnxBackend
    from tierwise.zoo import load_eval

    x, _ = load_eval(directory)
    batch1, batch32 = x[:1], x[:32]
    rows = []
    for row, variant in zip(variant_rows(zoo), zoo.variants, strict=True):
        backend = OnnxBackend(variant.name, directory / variant.path)
        asyncio.run(backend.load())
        try:
            one = _latency(backend, batch1, runs)
            many = _latency(backend, batch32, max(runs // 4, 10))
        finally:
            asyncio.run(backend.unload())
        row["batch1_p50_ms"] = one.p50_ms
        row["batch1_p99_ms"] = one.p99_ms
        row["batch32_p50_ms"] = many.p50_ms
        row["batch32_p99_ms"] = many.p99_ms
        rows.append(row)
    return rows


def demo(
    zoo_dir: Annotated[
        Path, typer.Option(help="Where the model family is built and cached.")
    ] = Path(".tierwise/zoo"),
    seed: Annotated[int, typer.Option(help="Seed for the model family.")] = 0,
    cascade: Annotated[
        bool, typer.Option(help="Also run the edge/cloud cascade replay on loopback.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Build the model family, measure it, then route the held-out set through a cascade."""
    started = time.monotonic()
    zoo, built = build_with_status(zoo_dir, seed, force=False, quiet=as_json)
    if not as_json:
        out_console.print(
            f"model family {'built' if built else 'cached'} in {zoo_dir} "
            f"({time.monotonic() - started:.1f} s)"
        )
    rows = measure_variants(zoo, zoo_dir)
    story = _cascade(zoo_dir, quiet=as_json) if cascade else None
    if as_json:
        print_json(
            {"zoo_dir": str(zoo_dir), "seed": seed, "built": built, "variants": rows}
            | ({"cascade": story} if story is not None else {})
        )
        return
    _variant_table(rows)
    if story is not None:
        _cascade_table(story)
    out_console.print(f"total time {time.monotonic() - started:.1f} s")


def _variant_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="model family, measured here (onnxruntime CPU, latency in ms)")
    for column in ("variant", "tier", "quant", "acc %", "KiB", "b1 p50", "b1 p99", "b32 p50"):
        table.add_column(
            column, justify="left" if column in ("variant", "tier", "quant") else "right"
        )
    for row in rows:
        table.add_row(
            row["variant"],
            row["tier"],
            row["quantization"],
            f"{row['accuracy'] * 100:.1f}",
            f"{row['size_bytes'] / 1024:.1f}",
            f"{row['batch1_p50_ms']:.3f}",
            f"{row['batch1_p99_ms']:.3f}",
            f"{row['batch32_p50_ms']:.3f}",
        )
    out_console.print(table)


def _cascade(zoo_dir: Path, *, quiet: bool) -> dict[str, Any]:
    """Calibrate, start the edge and cloud tier servers, replay the held-out split."""
    from rich.progress import Progress

    from tierwise.demo import calibrate_for_demo, cascade_plan, replay, tier_servers
    from tierwise.zoo import load_eval

    work = zoo_dir.parent / "demo"
    work.mkdir(parents=True, exist_ok=True)
    calibration = calibrate_for_demo(zoo_dir)
    requests = 2 * len(load_eval(zoo_dir)[1])
    with tier_servers(zoo_dir, work) as urls:
        plan, rule, thresholds = cascade_plan(work / "plan.yaml", zoo_dir, urls, calibration)
        with Progress(disable=quiet, console=out_console, transient=True) as progress:
            task = progress.add_task("replaying the held-out set", total=requests)
            summaries = replay(plan, zoo_dir, step=lambda: progress.advance(task))
    return {
        "plan": str(plan),
        "rule": rule,
        "thresholds": list(thresholds),
        "replay": [s.to_dict() for s in summaries],
    }


def _cascade_table(story: dict[str, Any]) -> None:
    thresholds = " / ".join(f"{t:g}" for t in story["thresholds"])
    table = Table(
        title=f"device -> edge -> cloud on loopback ({story['rule']} at {thresholds}) "
        "vs cloud only; latency in ms"
    )
    columns = ("route", "acc %", "device", "edge", "cloud", "p50", "p95", "p99", "USD / 1M")
    for column in columns:
        table.add_column(column, justify="left" if column == "route" else "right")
    for row in story["replay"]:
        share = row["share"]
        table.add_row(
            "cascade" if row["workload"] == "digits" else "cloud only",
            f"{row['accuracy'] * 100:.1f}",
            f"{share['device'] * 100:.0f}%",
            f"{share['edge'] * 100:.0f}%",
            f"{share['cloud'] * 100:.0f}%",
            f"{row['p50_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['usd_per_million']:.2f}",
        )
    out_console.print(table)
    out_console.print(f"plan: {story['plan']}")
