"""``tierwise drift reference`` and ``drift check`` on the sub-app: a model the zoo did
not make and a zoo variant, shifted and unshifted data, and wrong files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from score_models import PADDLE_OUTPUT, image_classifier, images
from tierwise.cli.drift import drift_app
from tierwise.errors import ConfigError
from tierwise.telemetry.drift import Reference
from tierwise.zoo import drift_stream, load_zoo

runner = CliRunner()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return image_classifier(tmp_path / "ocr.onnx", logits=True, height=8, width=16)


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_reference_then_check(tmp_path: Path, model: Path) -> None:
    data = _npz(tmp_path / "eval.npz", x=images(600, height=8, width=16, seed=0))
    ref = tmp_path / "reference.json"
    made = runner.invoke(
        drift_app, ["reference", str(model), "--inputs", str(data), "-o", str(ref), "--json"]
    )
    assert made.exit_code == 0, made.output
    summary = orjson.loads(made.stdout)
    assert summary["output"] == PADDLE_OUTPUT
    assert summary["scores"] == "logits"
    assert summary["rows"] == 600
    assert Reference.load(ref).classes == 2

    same = _npz(tmp_path / "same.npz", x=images(300, height=8, width=16, seed=1))
    quiet = runner.invoke(
        drift_app, ["check", str(ref), "--inputs", str(same), "--model", str(model), "--json"]
    )
    assert quiet.exit_code == 0, quiet.output
    report = orjson.loads(quiet.stdout)
    assert report["rows"] == 300
    assert report["level"] < 2
    assert {(s["signal"], s["test"]) for s in report["scores"]} == {
        ("class", "psi"), ("confidence", "psi"), ("confidence", "ks"),
        ("input_mean", "ks"), ("input_std", "ks"),
    }  # fmt: skip

    shifted = _npz(tmp_path / "shifted.npz", x=images(300, height=8, width=16, seed=2) + 1.0)
    loud = runner.invoke(
        drift_app,
        ["check", str(ref), "--inputs", str(shifted), "--model", str(model), "--strict"],
    )
    assert loud.exit_code == 1
    assert "alert (level 2)" in loud.stdout
    assert "input_mean" in loud.stdout


def test_zoo_variant_check(shared_zoo_dir: Path, tmp_path: Path) -> None:
    zoo = load_zoo(shared_zoo_dir)
    reference = zoo.reference_path("tiny")
    assert reference is not None
    x, _ = drift_stream(zoo, rows=250, seed=3, severity=2.5)
    data = _npz(tmp_path / "hard.npz", image=x)
    result = runner.invoke(
        drift_app,
        ["check", str(reference), "--inputs", str(data), "--model",
         str(zoo.model_path("tiny")), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["level"] == 2


def test_input_only_reference_needs_no_model(tmp_path: Path) -> None:
    from onnx_models import detector_model

    model = detector_model(tmp_path / "neck.onnx")  # feature maps, no class scores
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "d.npz", images=rng.normal(size=(400, 3, 8, 8)).astype(np.float32))
    ref = tmp_path / "r.json"
    made = runner.invoke(
        drift_app, ["reference", str(model), "--inputs", str(data), "-o", str(ref)]
    )
    assert made.exit_code == 0, made.output
    assert "inputs only" in made.stdout
    assert Reference.load(ref).output is None
    check = runner.invoke(drift_app, ["check", str(ref), "--inputs", str(data), "--json"])
    assert check.exit_code == 0, check.output
    assert orjson.loads(check.stdout)["level"] == 0


def _error(args: list[str]) -> str:
    result = runner.invoke(drift_app, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError), result.output
    return str(result.exception)


def test_wrong_files_give_clear_errors(tmp_path: Path, model: Path) -> None:
    data = _npz(tmp_path / "eval.npz", x=images(100, height=8, width=16))
    ref = tmp_path / "reference.json"
    assert runner.invoke(
        drift_app, ["reference", str(model), "--inputs", str(data), "-o", str(ref)]
    ).exit_code == 0  # fmt: skip
    assert "existing .npz" in _error(["reference", str(model), "--inputs", str(tmp_path / "no")])
    not_npz = tmp_path / "bad.npz"
    not_npz.write_text("hello")
    assert ".npz file of numeric arrays" in _error(
        ["reference", str(model), "--inputs", str(not_npz)]
    )
    not_model = tmp_path / "model.onnx"
    not_model.write_bytes(b"\x00junk")
    assert "model_path" in _error(["reference", str(not_model), "--inputs", str(data)])
    wrong_shape = _npz(tmp_path / "wrong.npz", x=images(30, height=9, width=16))
    assert "inputs" in _error(["check", str(ref), "--inputs", str(wrong_shape),
                               "--model", str(model)])  # fmt: skip
    assert "--model" in _error(["check", str(ref), "--inputs", str(data)])
    few = _npz(tmp_path / "few.npz", x=images(5, height=8, width=16))
    assert "at least 20 rows" in _error(
        ["check", str(ref), "--inputs", str(few), "--model", str(model)]
    )
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"format": 1}')
    assert str(broken) in _error(["check", str(broken), "--inputs", str(data)])
