"""The command line as a user meets it: real processes, real exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def tierwise(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_validate_examples_pass() -> None:
    assert len(EXAMPLES) == 3
    result = tierwise("validate", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok") == 3


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace("p99_ms: 500", "p99_ms: fast", 1), "slo.p99_ms: expected a number"),
        (lambda t: t + "\nbogus_section: 1\n", "bogus_section"),
        (lambda t: t.replace("model: shelf-detector", "model: ghost", 1), "ghost"),
        (lambda t: t + "\n  [unclosed\n", "invalid YAML"),
    ],
    ids=["wrong-type", "unknown-field", "missing-model", "bad-yaml"],
)
def test_validate_broken_spec_exit_2_names_file_and_field(
    tmp_path: Path,
    edit,
    needle: str,  # type: ignore[no-untyped-def]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(edit((ROOT / "examples" / "retail-shelf.yaml").read_text()))
    result = tierwise("validate", str(broken))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(broken) in result.stderr
    assert needle in result.stderr


def test_validate_json_output(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = tierwise("validate", "--json", str(EXAMPLES[0]), str(missing))
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["valid"] is False
    by_file = {f["file"]: f for f in doc["files"]}
    assert by_file[str(EXAMPLES[0])]["valid"] is True
    assert by_file[str(missing)]["problems"]


def test_wrong_flag_is_a_usage_error() -> None:
    result = tierwise("validate", "--bogus")
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "verb",
    [
        [], ["validate"], ["demo"], ["report"], ["serve"], ["calibrate"], ["gateway"],
        ["route"], ["route", "explain"], ["zoo"], ["zoo", "build"], ["zoo", "show"],
        ["bench"], ["bench", "profile"], ["bench", "endpoint"], ["plan"], ["plan", "matrix"],
        ["plan", "solve"], ["keys"], ["keys", "generate"], ["keys", "token"], ["bundle"],
        ["bundle", "create"],
        ["registry"], ["registry", "push"], ["registry", "pull"], ["registry", "list"],
        ["registry", "show"], ["registry", "tag"], ["registry", "verify"], ["registry", "gc"],
        ["agent"], ["agent", "status"], ["agent", "sync"], ["agent", "desired"],
        ["agent", "rollback"],
    ],
    ids=lambda verb: " ".join(verb) or "tierwise",
)  # fmt: skip
def test_every_verb_has_help(verb: list[str]) -> None:
    result = tierwise(*verb, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = tierwise("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("tierwise ")


def test_zoo_build_json_then_cached(
    seed1_zoo_build: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, first = seed1_zoo_build  # built from scratch through the CLI, once per session
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["built"] is True
    names = [v["variant"] for v in doc["variants"]]
    assert names == ["tiny", "tiny-int8", "small", "small-int8", "large", "large-int8"]
    accuracy = {v["variant"]: v["accuracy"] for v in doc["variants"]}
    assert accuracy["large"] >= accuracy["tiny"] + 0.05
    again = json.loads(tierwise("zoo", "build", "--out", str(out), "--seed", "1", "--json").stdout)
    assert again["built"] is False
    assert again["variants"] == doc["variants"]
    shown = tierwise("zoo", "show", str(out))
    assert shown.returncode == 0
    assert "large-int8" in shown.stdout


def test_zoo_show_on_a_non_zoo_folder_is_one_clear_line(tmp_path: Path) -> None:
    result = tierwise("zoo", "show", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "zoo.json" in result.stderr
    assert "Traceback" not in result.stderr
