"""Flags of ``tierwise calibrate``: stage costs, and the cascade given stage by stage."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tierwise.calibrate.run import StageSource

__all__ = ["parse_costs", "parse_stages", "stage_sources"]


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


def _pairs(items: list[str] | None, option: str, what: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise typer.BadParameter(f"expected NAME={what}, got {item!r}", param_hint=option)
        out.append((key.strip(), value.strip()))
    return out


def parse_stages(
    given: list[str] | None, outputs: list[str] | None, scores: list[str] | None
) -> list[StageSource]:
    """The cascade from ``--model``/``--endpoint`` values (in order), with the ``--output``
    and ``--scores`` of each stage; typer.BadParameter naming the flag otherwise."""
    from tierwise.calibrate.run import StageSource
    from tierwise.escalation.rules import SCORE_KINDS

    stages = _pairs(given, "--model/--endpoint", "FILE.onnx or NAME=http://HOST:PORT/v2/models/M")
    names = [n for n, _ in stages]
    if not 2 <= len(names) <= 4:
        raise typer.BadParameter(
            f"expected 2 to 4 stages, cheapest first, got {len(names)}",
            param_hint="--model/--endpoint",
        )
    if len(set(names)) != len(names):
        raise typer.BadParameter(
            f"expected a different NAME for each stage, got {', '.join(names)}",
            param_hint="--model/--endpoint",
        )
    read: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for option, pairs, into in (("--output", outputs, read), ("--scores", scores, kinds)):
        what = "TENSOR" if option == "--output" else "|".join(SCORE_KINDS)
        for name, value in _pairs(pairs, option, what):
            if name not in names:
                raise typer.BadParameter(
                    f"unknown stage {name!r}; expected one of {', '.join(names)}",
                    param_hint=option,
                )
            into[name] = value
    for name, kind in kinds.items():
        if kind not in SCORE_KINDS:
            raise typer.BadParameter(
                f"expected {name}={' or '.join(SCORE_KINDS)}, got {kind!r}", param_hint="--scores"
            )
    out = []
    for name, where in stages:
        remote = where.startswith(("http://", "https://"))
        if not remote and "/v2/models/" in where:
            raise typer.BadParameter(
                f"expected {name}=http://HOST:PORT/v2/models/MODEL, got {where!r}",
                param_hint="--endpoint",
            )
        out.append(
            StageSource(
                name,
                path=None if remote else Path(where),
                url=where if remote else None,
                output=read.get(name),
                scores="logits" if kinds.get(name) == "logits" else "probabilities",
            )
        )
    return out


def stage_sources(
    zoo: Path | None,
    stages: list[str] | None,
    eval_data: Path | None,
    output: list[str] | None,
    scores: list[str] | None,
    variants: str | None,
) -> list[StageSource] | None:
    """The user's stages, or None for the zoo; typer.BadParameter for a mix of both."""
    if zoo is not None and stages:
        raise typer.BadParameter(
            "expected --zoo DIR or --model/--endpoint stages, not both", param_hint="--zoo"
        )
    if zoo is not None:
        for flag, value in (("--eval", eval_data), ("--output", output), ("--scores", scores)):
            if value:
                raise typer.BadParameter(
                    "applies to --model/--endpoint stages; the zoo brings its own split",
                    param_hint=flag,
                )
        return None
    if not stages:
        raise typer.BadParameter(
            "expected --zoo DIR, or --model NAME=FILE.onnx / --endpoint NAME=URL stages"
            " (cheapest first) with --eval DATA",
            param_hint="--zoo / --model",
        )
    if variants is not None:
        raise typer.BadParameter(
            "applies to --zoo; the order of --model/--endpoint is the cascade",
            param_hint="--variants",
        )
    if eval_data is None:
        raise typer.BadParameter(
            "expected labelled held-out data: an .npz (input arrays + labels) or a folder"
            " of V2 request JSON files + labels.txt",
            param_hint="--eval",
        )
    return parse_stages(stages, output, scores)
