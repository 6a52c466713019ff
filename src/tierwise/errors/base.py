"""The root of the error tree and errors about configuration, specs and the zoo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "SpecError",
    "SpecProblem",
    "TierwiseError",
    "ZooError",
]


class TierwiseError(Exception):
    """Base of every tierwise error. ``status_code`` is the HTTP status to answer with."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(TierwiseError, ValueError):
    """An argument or setting is out of its bounds.

    ``parameter`` names it, ``expected`` says what would be accepted.
    """

    status_code = 400

    def __init__(self, parameter: str, expected: str, got: object = None) -> None:
        self.parameter = parameter
        self.expected = expected
        self.got = got
        suffix = "" if got is None else f", got {got!r}"
        super().__init__(f"{parameter}: expected {expected}{suffix}")


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec file: where it is and what was expected there."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = self.path or "<root>"
        return f"{self.file}: {where}: {self.message}"


class SpecError(TierwiseError):
    """A fleet spec could not be loaded; ``problems`` lists every problem found."""

    status_code = 400

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid spec")


class ZooError(TierwiseError):
    """The model family could not be built or read."""
