"""The ``tierwise`` command line: one verb per task; ``--json`` on verbs that print results."""

from tierwise.cli.app import app, main

__all__ = ["app", "main"]
