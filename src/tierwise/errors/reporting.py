"""Errors of the report and the demo."""

from __future__ import annotations

from tierwise.errors.base import TierwiseError

__all__ = ["DemoError", "ReportError"]


class ReportError(TierwiseError):
    """A report could not be made: its plan, or a file the plan references, is missing or
    lacks what the report shows, or the output folder cannot be written. ``path`` names the
    file when one is to blame."""

    status_code = 400

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message if path is None else f"{path}: {message}")


class DemoError(TierwiseError):
    """A step of the demo could not run (a tier server did not start)."""
