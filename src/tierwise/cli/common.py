"""What every verb shares: consoles, JSON output and turning errors into exit codes."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

__all__ = [
    "EXIT_FAILURE", "EXIT_USAGE", "JsonOpt", "as_flag", "err_console", "out_console",
    "print_json",
]  # fmt: skip

#: A command ran but what it checked or did failed.
EXIT_FAILURE = 1
#: Bad input: a flag, a file or a spec (the same code Click uses for usage errors).
EXIT_USAGE = 2

#: The --json flag of every verb that prints results.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as JSON.")]

#: Width of tables written to a pipe or a file (a terminal's own width is used there),
#: wide enough that no figure is cut short; COLUMNS still wins when set.
PIPE_WIDTH = 160


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return console


out_console = _console()
err_console = _console(stderr=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout (``--json`` output), stable key order."""
    sys.stdout.buffer.write(
        orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    )
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def as_flag(error: Exception, flags: dict[str, str] | None = None) -> Exception:
    """A ConfigError about a setting that a verb's flag set, naming the flag: through
    ``flags`` (setting name to flag) when given, else ``scale_up_s`` as ``--scale-up-s``;
    anything else as it is."""
    from tierwise.errors import ConfigError

    if not isinstance(error, ConfigError) or error.parameter.startswith("-"):
        return error
    head, _, rest = error.parameter.partition(".")
    if flags is not None:
        word, _, named = head.partition(" ")  # "gate p99_ratio": the flag, then which
        flag = flags.get(head) or (flags[word] + " " + named if named and word in flags else None)
    else:
        flag = "--" + head.replace("_", "-") if head.isidentifier() else None
    if flag is None:
        return error
    # a list's index says which of a repeated flag; a validator's own name adds nothing
    index = rest.split(".", 1)[0]
    return ConfigError(flag + (f"[{index}]" if index.isdigit() else ""), error.expected,
                       error.got)  # fmt: skip
