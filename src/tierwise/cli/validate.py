"""``tierwise validate``: check fleet spec files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import EXIT_USAGE, err_console, out_console, print_json

__all__ = ["validate"]


def validate(
    files: Annotated[list[Path], typer.Argument(help="Fleet spec YAML files.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Check fleet specs: exit 0 when every file is valid, 2 with one line per problem."""
    from tierwise.spec import validate_files

    problems = validate_files(files)
    by_file: dict[str, list[str]] = {str(f): [] for f in files}
    for problem in problems:
        by_file.setdefault(problem.file, []).append(f"{problem.path}: {problem.message}")
    if as_json:
        print_json(
            {
                "valid": not problems,
                "files": [
                    {
                        "file": name,
                        "valid": not found,
                        "problems": [
                            {"path": p.path, "message": p.message}
                            for p in problems
                            if p.file == name
                        ],
                    }
                    for name, found in by_file.items()
                ],
            }
        )
    else:
        for problem in problems:
            err_console.print(str(problem), markup=False, soft_wrap=True)
        for name, found in by_file.items():
            if not found:
                out_console.print(f"{name}: ok", markup=False)
    if problems:
        raise typer.Exit(EXIT_USAGE)
