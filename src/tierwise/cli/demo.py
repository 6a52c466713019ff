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
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Build the model family (cached) and measure every variant's accuracy and latency."""
    started = time.monotonic()
    zoo, built = build_with_status(zoo_dir, seed, force=False, quiet=as_json)
    if not as_json:
        out_console.print(
            f"model family {'built' if built else 'cached'} in {zoo_dir} "
            f"({time.monotonic() - started:.1f} s)"
        )
    rows = measure_variants(zoo, zoo_dir)
    if as_json:
        print_json({"zoo_dir": str(zoo_dir), "seed": seed, "built": built, "variants": rows})
        return
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
    best = max(rows, key=lambda r: float(r["accuracy"]))
    out_console.print(
        f"most accurate: {best['variant']} ({best['accuracy'] * 100:.1f}%); "
        f"total time {time.monotonic() - started:.1f} s"
    )
