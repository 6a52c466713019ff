"""Label selectors in Kubernetes' syntax: which nodes a rollout step takes.

A selector is comma-separated requirements, all of which a node's labels must meet:

- ``k=v`` or ``k==v``: the label is there and equals ``v``;
- ``k!=v``: the label is missing or differs from ``v``;
- ``k in (a,b)``: the label is there and is one of the values;
- ``k notin (a,b)``: the label is missing or is none of the values;
- ``k``: the label is there; ``!k``: it is not.

The empty text selects every node. Keys are an optional DNS subdomain prefix and a slash
(``example.com/``) then a name of at most 63 letters, digits, ``-``, ``_`` and ``.``
that starts and ends with a letter or digit; values follow the name's rules or are empty.
As in Kubernetes, ``hw=`` is allowed and asks for a label ``hw`` whose value is empty;
inside parentheses every value must be written out (``hw in (a,)`` is refused). Spaces
may surround any token. ``str(selector)`` gives the canonical text: requirements sorted,
set values sorted and deduplicated, ``==`` written ``=``; it parses back to an equal
selector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tierwise.errors import ConfigError
from tierwise.spec.labels import (
    KEY_RULE,
    MAX_LABELS,
    VALUE_RULE,
    check_labels,
    valid_key,
    valid_value,
)

__all__ = [
    "KEY_RULE",
    "MAX_LABELS",
    "MAX_SELECTOR_CHARS",
    "Op",
    "Requirement",
    "Selector",
    "VALUE_RULE",
    "check_labels",
    "parse_selector",
]

Op = Literal["=", "!=", "in", "notin", "exists", "!exists"]

#: Longest selector text accepted (a bound on the parser's work).
MAX_SELECTOR_CHARS = 4096
_OP_ORDER: dict[str, int] = {"exists": 0, "!exists": 1, "=": 2, "!=": 3, "in": 4, "notin": 5}
_SPECIAL = frozenset("=!(),")


@dataclass(frozen=True)
class Requirement:
    """One requirement: ``key``, ``op`` and its ``values`` (one for ``=``/``!=``, one or
    more for ``in``/``notin``, none for ``exists``/``!exists``). Set values are kept
    sorted and deduplicated, so equal requirements compare equal."""

    key: str
    op: Op
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.op not in _OP_ORDER:
            raise ConfigError("op", f"one of {', '.join(_OP_ORDER)}", self.op)
        if not isinstance(self.key, str) or not valid_key(self.key):
            raise ConfigError("key", f"a label key ({KEY_RULE})", self.key)
        if isinstance(self.values, str) or not all(isinstance(v, str) for v in self.values):
            raise ConfigError("values", "a tuple of label values", self.values)
        values = tuple(sorted(set(self.values)))
        wanted = {"exists": (0, 0), "!exists": (0, 0), "=": (1, 1), "!=": (1, 1)}
        low, high = wanted.get(self.op, (1, MAX_SELECTOR_CHARS))
        if not low <= len(values) <= high:
            raise ConfigError("values", f"{low} to {high} values for {self.op!r}", self.values)
        for value in values:
            if not valid_value(value):
                raise ConfigError("values", f"label values ({VALUE_RULE})", value)
            if value == "" and self.op in ("in", "notin"):
                raise ConfigError("values", "non-empty values inside parentheses", self.values)
        object.__setattr__(self, "values", values)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` meet this requirement."""
        got = labels.get(self.key)
        if self.op in ("=", "in"):
            return got is not None and got in self.values
        if self.op in ("!=", "notin"):
            return got is None or got not in self.values
        return (got is not None) == (self.op == "exists")

    def sort_key(self) -> tuple[str, int, tuple[str, ...]]:
        return (self.key, _OP_ORDER[self.op], self.values)

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!exists":
            return f"!{self.key}"
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


@dataclass(frozen=True)
class Selector:
    """Requirements that must all hold; none selects everything. Kept sorted and
    deduplicated, so two selectors that print the same compare equal."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        unique = sorted(set(self.requirements), key=Requirement.sort_key)
        object.__setattr__(self, "requirements", tuple(unique))

    @property
    def selects_all(self) -> bool:
        """True for the empty selector."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with ``labels`` is selected."""
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", one of "=", "==", "!=", "!", "(", ")", ",", or "end"
    text: str
    pos: int


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "=!" and text[i + 1 : i + 2] == "=":
            tokens.append(_Token(text[i : i + 2], text[i : i + 2], i))
            i += 2
        elif char in _SPECIAL:
            tokens.append(_Token(char, char, i))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            tokens.append(_Token("name", text[start:i], start))
    tokens.append(_Token("end", "", n))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.at = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def next(self) -> _Token:
        token = self.tokens[self.at]
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return token

    def fail(self, what: str, token: _Token, rule: str = "") -> ConfigError:
        where = (
            f"the end (position {token.pos})" if token.kind == "end" else f"position {token.pos}"
        )
        why = f" ({rule})" if rule else ""
        return ConfigError("selector", f"{what} at {where}{why}", self.text)

    def key(self) -> str:
        token = self.next()
        if token.kind != "name":
            raise self.fail("a label key", token)
        if not valid_key(token.text):
            raise self.fail("a label key", token, KEY_RULE)
        return token.text

    def value(self) -> str:
        token = self.next()
        if token.kind != "name":
            raise self.fail("a value", token)
        if not valid_value(token.text):
            raise self.fail("a label value", token, VALUE_RULE)
        return token.text

    def requirement(self) -> Requirement:
        if self.peek().kind == "!":
            self.next()
            return Requirement(self.key(), "!exists")
        key = self.key()
        token = self.peek()
        if token.kind in (",", "end"):
            return Requirement(key, "exists")
        self.next()
        if token.kind in ("=", "==", "!="):
            value = "" if self.peek().kind in (",", "end") else self.value()
            return Requirement(key, "!=" if token.kind == "!=" else "=", (value,))
        if token.kind == "name" and token.text in ("in", "notin"):
            opening = self.next()
            if opening.kind != "(":
                raise self.fail(f"'(' after {token.text!r}", opening)
            values = [self.value()]
            while (closing := self.next()).kind != ")":
                if closing.kind != ",":
                    raise self.fail("',' or ')'", closing)
                values.append(self.value())
            return Requirement(key, "in" if token.text == "in" else "notin", tuple(values))
        raise self.fail("an operator (=, ==, !=, in, notin), ',' or the end", token)


def parse_selector(text: str) -> Selector:
    """The selector ``text`` describes; ConfigError("selector", what was expected and
    where, ``text``) when it is malformed."""
    if not isinstance(text, str):
        raise ConfigError("selector", "a label selector (text)", text)
    if len(text) > MAX_SELECTOR_CHARS:
        raise ConfigError("selector", f"at most {MAX_SELECTOR_CHARS} characters", len(text))
    parser = _Parser(text)
    if parser.peek().kind == "end":
        return Selector()
    found = [parser.requirement()]
    while (token := parser.next()).kind != "end":
        if token.kind != ",":
            raise parser.fail("',' or the end", token)
        found.append(parser.requirement())
    return Selector(tuple(found))
