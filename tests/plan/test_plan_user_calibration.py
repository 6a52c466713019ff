"""A calibration of the user's own models (not the digits zoo) feeds the planner: the
variants it names are the spec's, and the plan's cascade stages read the outputs (and
score kinds) calibration read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from plan_helpers import fleet_data, host_profiles

from score_models import (
    BLURRY,
    PADDLE_OUTPUT,
    SHARP,
    image_classifier,
    images,
    run_cli,
    true_labels,
)
from tierwise.bench import save_profiles
from tierwise.errors import PlanError
from tierwise.plan import load_calibration
from tierwise.planfile.load import load_plan


def test_user_calibration_becomes_the_plans_stages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    image_classifier(tmp_path / "small.onnx", BLURRY, logits=True, output="logits_out")
    image_classifier(tmp_path / "big.onnx", SHARP)
    x = images(200)  # the issue's [N, 3, 48, 192] and 200 labelled rows
    np.savez(tmp_path / "eval.npz", x=x, labels=true_labels(x))
    code, out, err = run_cli(
        ["calibrate", "--model", "a=small.onnx", "--model", "b=big.onnx", "--scores",
         "a=logits", "--eval", "eval.npz", "--json"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    (tmp_path / "calibration.json").write_text(out)
    curve = load_calibration(tmp_path / "calibration.json")
    assert curve.outputs["a"].output == "logits_out"
    assert curve.outputs["a"].scores == "logits"

    fleet = fleet_data()  # model m: variants a (device-sized) and b
    fleet["models"]["m"]["variants"]["a"]["uri"] = "small.onnx"
    fleet["models"]["m"]["variants"]["b"]["uri"] = "big.onnx"
    fleet["workloads"]["w"]["min_accuracy"] = 0.97  # beyond a or b alone: a cascade
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(fleet, sort_keys=False))
    save_profiles(host_profiles(), tmp_path / "profiles.json")
    code, out, err = run_cli(
        ["plan", "fleet.yaml", "--profiles", "profiles.json", "--calibration",
         "calibration.json", "-o", "plan.yaml", "--endpoint", "edge=http://127.0.0.1:9",
         "--endpoint", "cloud=http://127.0.0.1:9", "--json"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    placement = json.loads(out)["plan"]["placements"]["w"]
    assert [s["variant"] for s in placement["stages"]] == ["a", "b"]
    plan = load_plan(tmp_path / "plan.yaml")
    first, last = plan.workload("w").cascade
    assert (first.output, first.scores) == ("logits_out", "logits")
    assert first.rule is not None
    assert (last.output, last.scores) == (PADDLE_OUTPUT, "probabilities")

    code, out, err = run_cli(
        ["route", "explain", "--plan", "plan.yaml", "--workload", "w"], capsys, monkeypatch
    )
    assert code == 0, err
    assert "reads 'logits_out' as logits (checked against small.onnx)" in out


def test_variant_outputs_for_a_variant_the_calibration_lacks(tmp_path: Path) -> None:
    doc = {"variants": ["a", "b"], "rules": {}, "variant_outputs": {"c": {"output": "y"}}}
    (tmp_path / "calibration.json").write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=r"variant_outputs: expected entries for the variants"):
        load_calibration(tmp_path / "calibration.json")
    doc["variant_outputs"] = {"a": {"output": "y", "scores": "odds"}}
    (tmp_path / "calibration.json").write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=r"variant_outputs\.a\.scores"):
        load_calibration(tmp_path / "calibration.json")
