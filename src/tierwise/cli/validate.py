"""``tierwise validate``: check fleet spec files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import EXIT_USAGE, err_console, out_console, print_json
from tierwise.errors import SpecProblem

__all__ = ["validate"]


def _entries(found: list[SpecProblem], name: str) -> list[dict[str, str]]:
    return [{"path": p.path, "message": p.message} for p in found if p.file == name]


def validate(
    files: Annotated[list[Path], typer.Argument(help="Fleet spec YAML files.", show_default=False)],
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Treat warnings (a variant's file that is not there) as problems: exit 2.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Check fleet specs: exit 0 when every file is valid, 2 with one line per
    problem.

    A variant's uri that is a plain path is looked up relative to the spec's
    folder: a folder, an empty file or (runtime onnxruntime) a file that is not
    ONNX is a problem; a missing file is a warning (on stderr, exit 0) unless
    --strict.
    """
    from tierwise.spec import check_files

    found = check_files(files)
    problems, warnings = list(found.problems), list(found.warnings)
    if strict:
        problems, warnings = problems + warnings, []
    names = [str(f) for f in files]
    names += [p.file for p in problems + warnings if p.file not in names]
    if as_json:
        print_json(
            {
                "valid": not problems,
                "strict": strict,
                "files": [
                    {
                        "file": name,
                        "valid": not _entries(problems, name),
                        "problems": _entries(problems, name),
                        "warnings": _entries(warnings, name),
                    }
                    for name in names
                ],
            }
        )
    else:
        for problem in problems:
            err_console.print(str(problem), markup=False, soft_wrap=True)
        for warning in warnings:
            err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
        for name in names:
            if _entries(problems, name):
                continue
            count = len(_entries(warnings, name))
            note = f" ({count} warning{'s' if count > 1 else ''})" if count else ""
            out_console.print(f"{name}: ok{note}", markup=False)
    if problems:
        raise typer.Exit(EXIT_USAGE)
