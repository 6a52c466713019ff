"""``tierwise zoo``: build and inspect the model family."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tierwise.cli.common import out_console, print_json

if TYPE_CHECKING:
    from tierwise.zoo import Zoo

__all__ = ["build_with_status", "variant_rows", "zoo_app"]

zoo_app = typer.Typer(
    help="Build and inspect the model family (tiny, small, large + int8).", no_args_is_help=True
)


def build_with_status(out: Path, seed: int, *, force: bool, quiet: bool) -> tuple[Zoo, bool]:
    """Build the zoo unless a current one is there; returns it and whether it was built."""
    from tierwise.zoo import build_zoo, load_zoo, zoo_is_current

    if not force and zoo_is_current(out, seed):
        return load_zoo(out), False
    if quiet:
        return build_zoo(out, seed=seed), True
    with out_console.status("building the model family") as status:
        zoo = build_zoo(out, seed=seed, progress=lambda msg: status.update(msg))
    return zoo, True


def variant_rows(zoo: Zoo) -> list[dict[str, Any]]:
    """One row per variant, as shown in tables and ``--json`` output."""
    return [
        {
            "variant": v.name,
            "tier": v.tier,
            "quantization": v.quantization,
            "parent": v.parent,
            "accuracy": v.accuracy,
            "size_bytes": v.size_bytes,
            "sha256": v.sha256,
            "path": v.path,
        }
        for v in zoo.variants
    ]


def _print_table(zoo: Zoo, title: str) -> None:
    table = Table(title=title)
    for column in ("variant", "tier", "quant", "accuracy", "size", "sha256"):
        table.add_column(column, justify="right" if column in ("accuracy", "size") else "left")
    for row in variant_rows(zoo):
        table.add_row(
            row["variant"],
            row["tier"],
            row["quantization"],
            f"{row['accuracy'] * 100:.1f}%",
            f"{row['size_bytes'] / 1024:.1f} KiB",
            row["sha256"][:12],
        )
    out_console.print(table)


@zoo_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="Model repository folder to write.")],
    seed: Annotated[int, typer.Option(help="Seed for data corruption and training.")] = 0,
    force: Annotated[
        bool, typer.Option(help="Rebuild even when a current build is there.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Train the tiny/small/large digit classifiers, export ONNX and int8 variants to OUT."""
    zoo, built = build_with_status(out, seed, force=force, quiet=as_json)
    if as_json:
        print_json({"dir": str(out), "seed": seed, "built": built, "variants": variant_rows(zoo)})
    else:
        _print_table(zoo, f"model family in {out} ({'built' if built else 'cached'}, seed {seed})")


@zoo_app.command("show")
def show(
    directory: Annotated[Path, typer.Argument(help="A folder made by `tierwise zoo build`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Show the variants of a built model family."""
    from tierwise.zoo import load_zoo

    zoo = load_zoo(directory)
    if as_json:
        print_json({"dir": str(directory), "variants": variant_rows(zoo)})
    else:
        _print_table(zoo, f"model family in {directory}")
