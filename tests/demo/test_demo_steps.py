"""The demo's step cache: a step is current only with the same inputs and its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierwise.demo.steps import StepCache, step_key
from tierwise.errors import ConfigError


def test_a_step_is_skipped_only_while_inputs_and_outputs_are_unchanged(tmp_path: Path) -> None:
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("zoo v1")
    output.write_text("profiles")
    key = step_key({"runs": 50}, [source])
    cache = StepCache(tmp_path / "steps.json")
    assert not cache.is_current("profile", key)
    cache.record("profile", key, [output])
    # a fresh cache reads what the last run recorded
    again = StepCache(tmp_path / "steps.json")
    assert again.is_current("profile", key)
    assert step_key({"runs": 50}, [source]) == key
    # another setting, or an input with other content, is another key
    assert step_key({"runs": 51}, [source]) != key
    source.write_text("zoo v2")
    assert step_key({"runs": 50}, [source]) != key
    # an output edited or removed since makes the step stale
    output.write_text("edited")
    assert not again.is_current("profile", key)
    output.unlink()
    assert not again.is_current("profile", key)


def test_a_missing_input_counts_and_outputs_must_exist(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    key = step_key({}, [absent])
    absent.write_text("now here")
    assert step_key({}, [absent]) != key
    with pytest.raises(ConfigError, match="outputs"):
        StepCache(tmp_path / "steps.json").record("plan", key, [tmp_path / "never-written"])


def test_a_corrupt_record_means_every_step_runs(tmp_path: Path) -> None:
    (tmp_path / "steps.json").write_text("{not json")
    cache = StepCache(tmp_path / "steps.json")
    assert not cache.is_current("zoo", "k")
    out = tmp_path / "o"
    out.write_text("x")
    cache.record("zoo", "k", [out])
    assert StepCache(tmp_path / "steps.json").is_current("zoo", "k")
    cache.forget("zoo")
    assert not cache.is_current("zoo", "k")
