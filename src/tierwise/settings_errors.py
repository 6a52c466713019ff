"""One clear line for a settings file that pydantic refused (``server.yaml``,
``agent.yaml``, a model's ``config.yaml``): every problem with its field path, in words,
unknown fields with the nearest known name, and no value that may be a secret."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from tierwise.errors import ConfigError

__all__ = ["safe_input", "settings_error"]

_SECRET = re.compile(r"pass|secret|token|credential", re.IGNORECASE)
_MAX_PROBLEMS = 8


def safe_input(error: Mapping[str, Any]) -> object:
    """The offending value of a validation error, unless it may be a secret: an unknown
    field (a password put in the wrong place) or a field named like one."""
    if error.get("type") == "extra_forbidden":
        return None
    if any(_SECRET.search(str(part)) for part in error.get("loc", ())):
        return None
    return error.get("input")


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model that ``loc`` (without its last part) points into."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if hasattr(c, "model_fields")), None)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _describe(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = tuple(error.get("loc", ()))
    where = ".".join(str(part) for part in loc) or "<top level>"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        known = _known_fields(model, loc)
        near = difflib.get_close_matches(str(loc[-1]), known, n=1) if loc else []
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"{where}: unknown setting{hint}"
    if kind == "missing":
        return f"{where}: missing (required)"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    value = safe_input(error)
    if value is None or isinstance(value, dict | list):
        return f"{where}: {message}"
    return f"{where}: {message}, got {value!r:.60}"


def settings_error(source: str, exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """A ConfigError naming ``source`` and every problem ``exc`` found (up to eight)."""
    errors = exc.errors()
    problems = [_describe(error, model) for error in errors[:_MAX_PROBLEMS]]
    more = len(errors) - len(problems)
    text = "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
    return ConfigError(source, f"valid settings; {text}")
