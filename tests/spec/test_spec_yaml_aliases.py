"""YAML aliases cannot blow up what reads them: the billion laughs and an alias inside
the node it names are refused before anything is built, in every YAML tierwise reads."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tierwise.agent import load_agent_settings
from tierwise.errors import ConfigError, SpecError
from tierwise.planfile.load import load_plan
from tierwise.spec import load_spec
from tierwise.yaml_limits import load_yaml

LAUGHS = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
)
RECURSIVE = "a: &x [1, *x]\n"


def test_aliases_that_expand_too_far_or_into_themselves_are_refused() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match="at most 1,000,000 nodes"):
        load_yaml(LAUGHS, "laughs.yaml")
    assert time.monotonic() - started < 5  # refused from the composed nodes, not expanded
    with pytest.raises(ConfigError, match="recursive alias"):
        load_yaml(RECURSIVE, "loop.yaml")
    shared = load_yaml("base: &b {cpu: 4}\nedge: *b\ncloud: *b\n", "ok.yaml")
    assert shared == {"base": {"cpu": 4}, "edge": {"cpu": 4}, "cloud": {"cpu": 4}}
    assert load_yaml("", "empty.yaml") is None


@pytest.mark.parametrize("text", [LAUGHS, RECURSIVE])
def test_every_reader_refuses_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "file.yaml"
    path.write_text(text)
    for read in (load_spec, load_plan):
        with pytest.raises(SpecError, match=r"aliases are expanded|recursive alias"):
            read(path)
    with pytest.raises(ConfigError, match=r"aliases are expanded|recursive alias"):
        load_agent_settings(path)


def test_a_plan_and_a_spec_mixed_up_say_so_in_one_line() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    with pytest.raises(SpecError) as plan_as_spec:
        load_spec(root / "plans" / "digits.yaml")
    assert len(plan_as_spec.value.problems) == 1
    assert "looks like a router plan" in str(plan_as_spec.value)
    with pytest.raises(SpecError) as spec_as_plan:
        load_plan(root / "fleets" / "digits.yaml")
    assert len(spec_as_plan.value.problems) == 1
    assert "looks like a fleet spec" in str(spec_as_plan.value)
