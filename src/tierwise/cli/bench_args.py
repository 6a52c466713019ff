"""Parsing ``tierwise bench``'s flags: batch sizes, input shapes, model files, the power
model and where the RAPL counters are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tierwise.bench.energy import RaplChoice
    from tierwise.spec.tiers import PowerModel

__all__ = [
    "parse_batch_sizes",
    "parse_input_shapes",
    "parse_model_files",
    "parse_power",
    "parse_rapl",
]


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; typer.BadParameter when malformed."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise typer.BadParameter(
            f"expected distinct whole numbers >= 1, comma-separated (e.g. 1,8,32,64), got {text!r}",
            param_hint="--batch",
        )
    return sizes


def parse_input_shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    """``["x=3,48,192", "mask="]`` -> ``{"x": (3, 48, 192), "mask": ()}``;
    typer.BadParameter when malformed or an input is named twice."""
    out: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        parts = [p.strip() for p in dims.split(",")] if dims.strip() else []
        try:
            shape = tuple(int(p) for p in parts)
        except ValueError:
            shape = (0,)
        if not sep or not name or name in out or any(d < 1 for d in shape):
            raise typer.BadParameter(
                "expected NAME=D1,D2,... with whole sizes >= 1, each input once "
                f"(e.g. x=3,48,192), got {item!r}",
                param_hint="--input-shape",
            )
        out[name] = shape
    return out


def parse_model_files(items: list[str]) -> dict[str, Path]:
    """``["small=m.onnx", "models/large/1/model.onnx"]`` -> variant name to file. Without
    ``NAME=``, the name is the model repository folder (``large``) or the file's stem."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        path = Path(raw if sep else item)
        if not sep:
            parent = path.parent
            name = parent.parent.name if parent.name.isdigit() and parent.parent.name else path.stem
        if not name or name in out:
            raise typer.BadParameter(
                f"expected [VARIANT=]FILE with distinct variant names, got {item!r}",
                param_hint="--model",
            )
        out[name] = path
    return out


def parse_power(idle_watts: float | None, active_watts: float | None) -> PowerModel | None:
    """The power model of --idle-watts/--active-watts (None without --active-watts)."""
    from tierwise.spec.tiers import PowerModel

    if active_watts is None:
        if idle_watts is not None:
            raise typer.BadParameter(
                "give --active-watts with --idle-watts", param_hint="--idle-watts"
            )
        return None
    if not active_watts > 0:
        raise typer.BadParameter("expected watts > 0", param_hint="--active-watts")
    idle = idle_watts or 0.0
    if not 0 <= idle <= active_watts:
        raise typer.BadParameter(
            f"expected watts in [0, --active-watts={active_watts:g}]", param_hint="--idle-watts"
        )
    return PowerModel(idle_watts=idle, active_watts=active_watts)


def parse_rapl(text: str) -> RaplChoice:
    if text in ("auto", "off"):
        return text  # type: ignore[return-value]
    folder = Path(text)
    if not folder.is_dir():
        raise typer.BadParameter("expected auto, off or a powercap folder", param_hint="--rapl")
    return folder
