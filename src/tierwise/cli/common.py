"""What every verb shares: consoles, JSON output and turning errors into exit codes."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "err_console", "out_console", "print_json"]

#: A command ran but what it checked or did failed.
EXIT_FAILURE = 1
#: Bad input: a flag, a file or a spec (the same code Click uses for usage errors).
EXIT_USAGE = 2

out_console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """One JSON document on stdout (``--json`` output), stable key order."""
    sys.stdout.buffer.write(
        orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    )
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
