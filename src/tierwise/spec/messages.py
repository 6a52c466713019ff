"""Turns pydantic's validation errors into readable ``(path, message)`` pairs.

Paths are dotted with list indices in brackets: ``tiers.shop-edge.cost.capex_usd``,
``workloads.shelf.tiers[1]``. Messages say what was expected and what was found:
``expected a number, got 'fast'``, ``field required``, ``unknown field 'latncy'``.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tierwise.spec.tiers import KIND_RANK

__all__ = ["Loc", "describe", "format_path", "translate"]

Loc = tuple[str | int, ...]

_KEY = "[key]"


def format_path(loc: Sequence[str | int]) -> str:
    """``('workloads', 'a', 'tiers', 1)`` -> ``workloads.a.tiers[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(value: object) -> str:
    """A short rendering of a YAML value for 'got ...'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found by following ``loc`` (raw, with union tags) from ``root``."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif origin is dict:
            tp = get_args(tp)[1]
        elif origin is list:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            matches = [m for m in get_args(tp) if _tag_of(m) == part]
            if not matches:
                return None
            tp = matches[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _tag_of(member: Any) -> object:
    if isinstance(member, type) and issubclass(member, BaseModel):
        kind = member.model_fields.get("kind")
        if kind is not None and get_origin(kind.annotation) is Literal:
            return get_args(kind.annotation)[0]
    return None


def _unknown_field(root: type[BaseModel], parent: Loc, field: str) -> str:
    model = _model_at(root, parent)
    message = f"unknown field {field!r}"
    if model is None:
        return message
    allowed = [n for n in model.model_fields if n != "name" or not parent]
    close = difflib.get_close_matches(field, allowed, n=1)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    return f"{message} (allowed: {', '.join(allowed)})"


def _normalise(loc: Loc) -> Loc:
    """Drop pydantic's union tags (``tiers.x.edge.cost`` -> ``tiers.x.cost``)."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "tiers" and parts[2] in KIND_RANK:
        del parts[2]
    return tuple(parts)


_NUMBER_TYPES = {"float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _number_hint(value: object) -> str:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        if "e" in value.lower() and "." not in value:
            return " (YAML reads 1e-3 as text; write 1.0e-3)"
        return " (remove the quotes)"
    return ""


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    got = describe(err.get("input"))
    if kind == "missing":
        return "field required"
    if kind in _NUMBER_TYPES:
        what = "a whole number" if kind.startswith("int") else "a number"
        return f"expected {what}, got {got}{_number_hint(err.get('input'))}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        shown = f"{bound:g}" if isinstance(bound, int | float) else str(bound)
        return f"expected a number {_BOUNDS[kind]} {shown}, got {got}"
    if kind == "finite_number":
        return f"expected a finite number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind == "string_type":
        return f"expected text, got {got}"
    if kind == "string_too_short":
        return "expected non-empty text"
    if kind == "string_pattern_mismatch":
        return f"expected a name of letters, digits, '-' and '_', got {got}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}"
    if kind == "list_type":
        return f"expected a list, got {got}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} entries, got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} entries, got {ctx.get('actual_length')}"
    if kind == "union_tag_invalid":
        return f"expected one of {ctx.get('expected_tags')}, got {describe(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return "field required (one of 'device', 'edge', 'cloud')"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return str(err["msg"])


def translate(exc: ValidationError, prefix: Loc, root: type[BaseModel]) -> list[tuple[Loc, str]]:
    """Each error of ``exc`` as ``(normalised loc, message)``; locs are under ``prefix``.

    ``root`` is the model at the top of the full loc, used to list allowed field names.
    """
    out: list[tuple[Loc, str]] = []
    for err in exc.errors(include_url=False):
        raw: Loc = prefix + tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = raw[:-1]
            out.append((_normalise(parent), _unknown_field(root, parent, str(raw[-1]))))
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            out.append(((*_normalise(raw), "kind"), _message(err)))
        elif raw and raw[-1] == _KEY:
            out.append((_normalise(raw[:-1]), f"invalid name: {_message(err)}"))
        else:
            out.append((_normalise(raw), _message(err)))
    return out
