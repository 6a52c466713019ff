"""``tierwise calibrate`` as a user meets it: JSON that parses, tables, usage errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tierwise.cli.calibrate import calibrate, parse_costs

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "retail-shelf.yaml"

app = typer.Typer()
app.command()(calibrate)


@app.callback()
def _root() -> None:
    """A stand-in for the tierwise app, holding only this verb."""


runner = CliRunner()


@pytest.fixture(scope="session")
def zoo_dir(shared_zoo_dir: Path) -> Path:
    return shared_zoo_dir


def test_json_output_parses(zoo_dir: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--zoo", str(zoo_dir), "--json", "--steps", "21"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["variants"] == ["tiny", "small", "large"]
    assert doc["usd_per_inference"] == [0.0, 3e-5, 2e-4]
    assert doc["target_accuracy_relative"] == 0.99
    assert set(doc["rules"]) == {"max_prob", "margin", "entropy"}
    assert doc["oracle"]["cost_usd_per_million"] < doc["cloud_only"]["cost_usd_per_million"]
    for rule in doc["rules"].values():
        assert rule["accuracy"] >= doc["target_accuracy"]


def test_costs_and_target_flags(zoo_dir: Path) -> None:
    args = ["calibrate", "--zoo", str(zoo_dir), "--json", "--steps", "11"]
    args += ["--variants", "tiny,large", "--target-accuracy", "0.9"]
    args += ["--cost", "device=0.000001", "--cost", "cloud=0.001"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["variants"] == ["tiny", "large"]
    assert doc["usd_per_inference"] == [1e-6, 1e-3]
    assert doc["cloud_only"]["cost_usd_per_million"] == pytest.approx(1000.0)
    assert doc["cost_source"] == "given"


def test_spec_costs_with_override(zoo_dir: Path) -> None:
    args = ["calibrate", "--zoo", str(zoo_dir), "--json", "--steps", "11", "--spec", str(SPEC)]
    result = runner.invoke(app, [*args, "--cost", "cloud=0.0002"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert "device=shelf-cam, edge=store-edge, cloud=reid-cloud" in doc["cost_source"]
    assert doc["usd_per_inference"][2] == 2e-4
    assert 0 < doc["usd_per_inference"][0] < doc["usd_per_inference"][1]


def test_tables_name_rules_and_oracle(zoo_dir: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--zoo", str(zoo_dir), "--steps", "11"])
    assert result.exit_code == 0, result.output
    for needle in ("rule max_prob", "rule margin", "rule entropy", "oracle", "cloud-only"):
        assert needle in result.stdout


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--bogus"], "No such option"),
        (["--cost", "edge"], "--cost"),
        (["--cost", "edge=cheap"], "--cost"),
        (["--cost", "edge=-1"], "--cost"),
        (["--target-accuracy", "1.5"], "--target-accuracy"),
        (["--target-accuracy", "0"], "--target-accuracy"),
        (["--variants", "tiny"], "--variants"),
        (["--steps", "1"], "--steps"),
        (["--cloud-throughput-per-s", "0"], "--cloud-throughput-per-s"),
    ],
)
def test_bad_flags_exit_2(zoo_dir: Path, extra: list[str], needle: str) -> None:
    result = runner.invoke(app, ["calibrate", "--zoo", str(zoo_dir), *extra])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert result.stdout == ""


def test_parse_costs() -> None:
    assert parse_costs(["edge=3e-5", " cloud =0.0002"]) == {"edge": 3e-5, "cloud": 2e-4}
    with pytest.raises(typer.BadParameter):
        parse_costs(["=1"])


def test_real_cli(zoo_dir: Path) -> None:
    def tierwise(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tierwise", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    ok = tierwise("calibrate", "--zoo", str(zoo_dir), "--json", "--steps", "11")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["oracle"]["accuracy"] > 0.9
    bad = tierwise("calibrate", "--zoo", str(zoo_dir), "--variants", "tiny,huge")
    assert bad.returncode == 2
    assert "huge" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_one_cost_keeps_the_defaults_for_the_other_stages(zoo_dir: Path) -> None:
    args = ["calibrate", "--zoo", str(zoo_dir), "--json", "--steps", "11"]
    result = runner.invoke(app, [*args, "--cost", "edge=0.00005"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["usd_per_inference"] == [0.0, 5e-5, 2e-4]
    assert doc["cost_source"] == "given, default for the other stages"
    unknown = runner.invoke(app, [*args, "--cost", "foo=1"])
    assert unknown.exit_code == 2
    assert "unknown stage 'foo'" in unknown.output
