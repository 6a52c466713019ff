"""One clear line for settings that pydantic refused.

A settings file (``server.yaml``, ``agent.yaml``, a model's ``config.yaml``) gets
:func:`settings_error`: every problem with its field path, in words, unknown fields with
the nearest known name (or the place a setting moved to), and no value that may be a
secret. Settings built in code subclass :class:`SettingsModel`: a refused value raises
:class:`~tierwise.errors.ConfigError` naming the field, what it expects and what it got.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tierwise.errors import ConfigError

__all__ = ["SettingsModel", "config_error", "safe_input", "settings_error"]

_SECRET = re.compile(r"pass|secret|token|credential", re.IGNORECASE)
_MAX_PROBLEMS = 8
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


class SettingsModel(BaseModel):
    """A frozen settings model that refuses unknown fields.

    Built in code (``BreakerSettings(window=0)``), a refused value raises ConfigError
    for the first problem; inside another model (read from a file), its problems are
    that model's validation errors. ``moved_settings`` maps a field name that is no longer
    accepted here to where it lives now (``"max_batch_size": "batching.max_batch_size"``),
    so the error says where to put it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    moved_settings: ClassVar[Mapping[str, str]] = {}

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, type(self)) from exc

    # validation from data (model_validate, a field of another model) keeps pydantic's
    # errors and their paths: only a call in code goes through this __init__ (RootModel's
    # marker for the same thing)
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


def safe_input(error: Mapping[str, Any]) -> object:
    """The offending value of a validation error, unless it may be a secret: an unknown
    field (a password put in the wrong place) or a field named like one."""
    if error.get("type") == "extra_forbidden":
        return None
    if any(_SECRET.search(str(part)) for part in error.get("loc", ())):
        return None
    return error.get("input")


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that ``loc`` (without its last part) points into."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            return None
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if hasattr(c, "model_fields")), None)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unknown(loc: tuple[Any, ...], model: type[BaseModel]) -> tuple[str | None, str | None]:
    """Where an unknown field lives now (its full path), or else the nearest known name."""
    owner = _model_at(model, loc)
    if owner is None or not loc:
        return None, None
    name = str(loc[-1])
    moved: Mapping[str, str] = getattr(owner, "moved_settings", {})
    if name in moved:
        return "".join(f"{part}." for part in loc[:-1]) + moved[name], None
    near = difflib.get_close_matches(name, list(owner.model_fields), n=1)
    return None, near[0] if near else None


def _inner(error: Mapping[str, Any]) -> ConfigError | None:
    """The ConfigError a validator raised, when that is what refused the value."""
    found = (error.get("ctx") or {}).get("error")
    return found if isinstance(found, ConfigError) else None


def _where(loc: tuple[Any, ...], inner: ConfigError | None) -> str:
    """The dotted field path; a model-level check adds the field its error names."""
    parts = [str(part) for part in loc]
    if inner is not None and (not parts or parts[-1] != inner.parameter):
        parts.append(inner.parameter)
    return ".".join(parts) or "<top level>"


def _expected(error: Mapping[str, Any]) -> str:
    """What pydantic would have accepted, in a few words (``>= 1``, ``a valid integer``)."""
    kind = str(error.get("type", ""))
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        return f"{symbol} {(error.get('ctx') or {}).get(key)}"
    if kind == "missing":
        return "a value (required)"
    if kind == "string_pattern_mismatch":
        return f"text matching {(error.get('ctx') or {}).get('pattern')}"
    message = str(error.get("msg", "a valid value")).removeprefix("Value error, ")
    return message.removeprefix("Input should be ")


def config_error(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first problem ``exc`` found, as a ConfigError naming the field (its dotted
    path), what it expects and the value it got (unless that may be a secret)."""
    error = exc.errors()[0]
    loc = tuple(error.get("loc", ()))
    inner = _inner(error)
    where = _where(loc, inner)
    if inner is not None:
        return ConfigError(where, inner.expected, inner.got)
    if error.get("type") == "extra_forbidden":
        moved, near = _unknown(loc, model)
        if moved is not None:
            return ConfigError(where, f"no setting here; it lives under {moved}")
        hint = f" (did you mean {near!r}?)" if near else ""
        return ConfigError(where, f"a known setting{hint}")
    value = safe_input(error)
    return ConfigError(where, _expected(error), None if isinstance(value, dict) else value)


def _describe(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    inner = _inner(error)
    where = _where(loc, inner)
    if kind == "extra_forbidden":
        moved, near = _unknown(loc, model)
        if moved is not None:
            return f"{where}: unknown setting here; it lives under {moved}"
        return f"{where}: unknown setting" + (f" (did you mean {near!r}?)" if near else "")
    if kind == "missing":
        return f"{where}: missing (required)"
    if inner is not None:
        got = "" if inner.got is None else f", got {inner.got!r:.60}"
        return f"{where}: expected {inner.expected}{got}"
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
