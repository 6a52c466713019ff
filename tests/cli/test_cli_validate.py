"""``tierwise validate`` on the files variants name: a missing file warns (exit 0), --strict
makes it a problem (exit 2), a file that cannot be the model is a problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELF = ROOT / "examples" / "retail-shelf.yaml"
URI = "models.shelf-detector.variants.nano-int8.uri"


def tierwise(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_missing_artifacts_warn_on_stderr_and_exit_0() -> None:
    result = tierwise("validate", "examples/retail-shelf.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "examples/retail-shelf.yaml: ok (4 warnings)"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4
    resolved = ROOT / "examples" / "artifacts" / "shelf-detector-nano-int8.onnx"
    assert lines[0].startswith(
        f"warning: examples/retail-shelf.yaml: {URI}: no such file:"
        f" 'artifacts/shelf-detector-nano-int8.onnx' resolves to {resolved}"
    )


def test_strict_makes_warnings_problems() -> None:
    result = tierwise("validate", "--strict", "examples/retail-shelf.yaml")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"examples/retail-shelf.yaml: {URI}: no such file:")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_json_lists_warnings_and_strict() -> None:
    loose = json.loads(tierwise("validate", "--json", str(SHELF)).stdout)
    assert loose["valid"] is True
    (entry,) = loose["files"]
    assert entry["valid"] is True
    assert entry["problems"] == []
    assert entry["warnings"][0]["path"] == URI
    strict = tierwise("validate", "--json", "--strict", str(SHELF))
    assert strict.returncode == 2
    doc = json.loads(strict.stdout)
    assert doc["valid"] is False
    assert doc["strict"] is True
    assert doc["files"][0]["warnings"] == []
    assert doc["files"][0]["problems"][0]["path"] == URI


def test_a_folder_where_the_model_should_be_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(SHELF.read_text())
    (tmp_path / "artifacts" / "shelf-detector-nano-int8.onnx").mkdir(parents=True)
    result = tierwise("validate", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    (problem,) = [line for line in result.stderr.splitlines() if not line.startswith("warning")]
    assert problem.startswith(f"{spec}: {URI}: 'artifacts/shelf-detector-nano-int8.onnx'")
    assert "resolves to the folder" in problem
    assert "expected an ONNX model file" in problem
