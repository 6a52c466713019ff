"""Label selectors: Kubernetes' syntax, its matching rules, its errors, canonical text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierwise.control.selector import (
    MAX_LABELS,
    Requirement,
    Selector,
    check_labels,
    parse_selector,
)
from tierwise.errors import ConfigError

PI = {"hw": "pi5", "zone": "eu-1", "canary": "true"}
JETSON = {"hw": "jetson", "zone": "us-2", "example.com/gpu": "orin"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("", [PI, JETSON, BARE]),
        ("hw=pi5", [PI]),
        ("hw==pi5", [PI]),
        ("hw!=pi5", [JETSON, BARE]),  # a missing label differs too
        ("hw in (pi5,jetson)", [PI, JETSON]),
        ("hw notin (pi5)", [JETSON, BARE]),
        ("canary", [PI]),
        ("!canary", [JETSON, BARE]),
        ("example.com/gpu", [JETSON]),
        ("example.com/gpu in (orin, xavier)", [JETSON]),
        ("zone in (eu-1,us-2), hw!=jetson", [PI]),
        ("  hw = pi5 ,  canary  ", [PI]),
        ("hw=pi5,hw=jetson", []),
    ],
)
def test_requirements_select_as_kubernetes_does(text: str, selected: list[dict[str, str]]) -> None:
    selector = parse_selector(text)
    assert [labels for labels in (PI, JETSON, BARE) if selector.matches(labels)] == selected


def test_an_empty_value_asks_for_a_label_with_an_empty_value() -> None:
    selector = parse_selector("hw=")
    assert selector.matches({"hw": ""})
    assert not selector.matches({"hw": "pi5"})
    assert not selector.matches({})
    assert str(selector) == "hw="
    assert parse_selector("hw!=,zone=eu").matches({"zone": "eu"})


def test_the_canonical_text_sorts_and_deduplicates() -> None:
    selector = parse_selector("zone notin (b,a,b), hw==pi5, !canary, hw, hw=pi5")
    assert str(selector) == "!canary,hw,hw=pi5,zone notin (a,b)"
    assert parse_selector(str(selector)) == selector
    assert parse_selector("hw=pi5,zone=a") == parse_selector("zone=a , hw==pi5")
    assert parse_selector("").selects_all
    assert not selector.selects_all


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hw in pi5", "'(' after 'in' at position 6"),
        ("hw notin pi5", "'(' after 'notin' at position 9"),
        ("=pi5", "a label key at position 0"),
        ("hw=pi 5", "',' or the end at position 6"),
        ("hw in (a,b", "',' or ')' at the end (position 10)"),
        ("hw in (a b)", "',' or ')' at position 9"),
        ("hw=a)", "',' or the end at position 4"),
        ("hw=pi5,", "a label key at the end (position 7)"),
        (",hw", "a label key at position 0"),
        ("hw in (a,)", "a value at position 9"),
        ("hw in ()", "a value at position 7"),
        ("hw=!x", "a value at position 3"),
        ("hw > 3", "an operator (=, ==, !=, in, notin), ',' or the end at position 3"),
        ("!hw=x", "',' or the end at position 3"),
        ("-hw=x", "a label key at position 0 (an optional DNS prefix"),
        ("Example.com/hw", "a label key at position 0"),
        ("a" * 64, "a label key at position 0"),
        ("hw=" + "v" * 64, "a label value at position 3 (empty, or at most 63"),
        ("hw=pi5-", "a label value at position 3"),
    ],
)
def test_malformed_selectors_say_what_was_expected_where(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_selector(text)
    assert caught.value.parameter == "selector"
    assert caught.value.got == text
    assert caught.value.expected.startswith(expected), caught.value.expected


def test_a_selector_too_long_or_not_text_is_refused() -> None:
    with pytest.raises(ConfigError, match="at most 4096 characters"):
        parse_selector("hw=pi5," * 1000)
    with pytest.raises(ConfigError, match="a label selector"):
        parse_selector(42)  # type: ignore[arg-type]


def test_requirements_built_in_code_are_checked() -> None:
    with pytest.raises(ConfigError, match="key: expected a label key"):
        Requirement("bad key", "exists")
    with pytest.raises(ConfigError, match="1 to 1 values for '='"):
        Requirement("hw", "=", ("a", "b"))
    with pytest.raises(ConfigError, match="non-empty values inside parentheses"):
        Requirement("hw", "in", ("",))
    with pytest.raises(ConfigError, match="a tuple of label values"):
        Requirement("hw", "in", "ab")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="op: expected one of"):
        Requirement("hw", "~", ())  # type: ignore[arg-type]


def test_check_labels_names_the_offending_key() -> None:
    labels = {"hw": "pi5", "example.com/zone": "eu-1", "empty": ""}
    assert check_labels(labels, "node n1") == labels
    with pytest.raises(ConfigError) as caught:
        check_labels({"hw": "pi5", "bad key": "x"}, "labels")
    assert caught.value.parameter == "labels.bad key"
    assert "a label key" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        check_labels({"hw": "pi 5"}, "labels")
    assert caught.value.parameter == "labels.hw"
    assert caught.value.got == "pi 5"
    with pytest.raises(ConfigError, match=r"labels\.hw"):
        check_labels({"hw": 5}, "labels")  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="a mapping of label keys"):
        check_labels(["hw"], "node n1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"at most {MAX_LABELS} labels"):
        check_labels({f"k{i}": "v" for i in range(MAX_LABELS + 1)}, "node n1")


_NAMES = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
_PREFIXES = st.sampled_from(["", "example.com/", "node-role.kubernetes.io/", "a-b.c/"])
_KEYS = st.builds(lambda p, n: p + n, _PREFIXES, _NAMES)
_VALUES = st.sampled_from(["pi5", "jetson", "eu-1", "true", "x_y.z", "A9"])


@st.composite
def _requirements(draw: st.DrawFn) -> Requirement:
    key = draw(_KEYS)
    op = draw(st.sampled_from(["=", "!=", "in", "notin", "exists", "!exists"]))
    if op in ("exists", "!exists"):
        return Requirement(key, op)
    if op in ("=", "!="):
        return Requirement(key, op, (draw(st.one_of(st.just(""), _VALUES)),))
    return Requirement(key, op, tuple(draw(st.lists(_VALUES, min_size=1, max_size=4))))


_LABELS = st.dictionaries(
    st.sampled_from(["hw", "zone", "example.com/gpu", "canary"]), _VALUES, max_size=4
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_requirements(), max_size=5), st.lists(_LABELS, min_size=1, max_size=5))
def test_canonical_text_parses_back_to_an_equal_selector(
    requirements: list[Requirement], nodes: list[dict[str, str]]
) -> None:
    selector = Selector(tuple(requirements))
    again = parse_selector(str(selector))
    assert again == selector
    assert str(again) == str(selector)
    for labels in nodes:
        expected = all(r.matches(labels) for r in requirements)
        assert again.matches(labels) == selector.matches(labels) == expected
