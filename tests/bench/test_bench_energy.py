"""Energy per inference in profiles: estimated from a power model, measured from RAPL
counters (a powercap tree written here, advanced as the model runs), absent with
neither; the ``tierwise bench profile`` flags that set it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_helpers import conv_pool_model

from score_models import run_cli
from tierwise.bench.measure import MeasureSettings, profile_files, profile_model
from tierwise.bench.profiles import ProfileSet, load_profiles, save_profiles
from tierwise.spec.tiers import PowerModel

SHAPES = {"x": (3, 16, 16)}


def powercap(root: Path) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").write_text("1000\n")
    return zone / "energy_uj"


def test_estimated_from_the_power_model(tmp_path: Path) -> None:
    model = conv_pool_model(tmp_path / "ocr.onnx")
    settings = MeasureSettings(
        batch_sizes=(1, 4), runs=15, warmup_runs=2, rapl="off",
        power=PowerModel(idle_watts=3.0, active_watts=5.0),
    )  # fmt: skip
    found = profile_files({"ocr": model}, providers=["cpu"], settings=settings,
                          input_shapes=SHAPES)  # fmt: skip
    (profile,) = found.profiles
    assert profile.energy_source == "estimated"
    for batch in profile.batches:
        expected = 5.0 * batch.mean_ms / 1000.0 / batch.batch_size
        assert batch.energy_j_per_inference == pytest.approx(expected, rel=1e-6)
    assert profile.energy_j_per_inference == profile.batches[0].energy_j_per_inference
    assert found.settings.power == PowerModel(idle_watts=3.0, active_watts=5.0)
    again = load_profiles(save_profiles(found, tmp_path / "profiles.json"))
    assert again.profiles[0].batches[1].energy_j_per_inference == pytest.approx(
        profile.batches[1].energy_j_per_inference
    )
    assert again.profiles[0].energy_source == "estimated"


def test_measured_from_rapl_beats_the_power_model(tmp_path: Path) -> None:
    counter = powercap(tmp_path / "powercap")
    ticks = {"uj": 1000, "t": 0.0}

    def clock() -> float:
        # each reading of the timer is also 0.5 mJ more on the package counter
        ticks["uj"] += 500
        counter.write_text(f"{ticks['uj']}\n")
        ticks["t"] += 1e-4
        return ticks["t"]

    settings = MeasureSettings(
        batch_sizes=(1, 4), runs=10, warmup_runs=1, rapl=tmp_path / "powercap",
        power=PowerModel(active_watts=1000.0),
    )  # fmt: skip
    profile = profile_model(
        conv_pool_model(tmp_path / "ocr.onnx"), variant="ocr", settings=settings,
        input_shapes=SHAPES, clock=clock,
    )  # fmt: skip
    assert profile.energy_source == "measured"
    for batch in profile.batches:
        # two readings per timed call (and one for the deadline): 1 to 1.5 mJ per call
        joules = batch.energy_j_per_inference
        assert joules is not None
        assert 1e-3 / batch.batch_size <= joules <= 1.5e-3 / batch.batch_size
        assert batch.runs == 10


def test_without_counters_or_power_model_no_energy(tmp_path: Path) -> None:
    settings = MeasureSettings(batch_sizes=(1,), runs=5, warmup_runs=0, rapl=tmp_path)
    profile = profile_model(
        conv_pool_model(tmp_path / "ocr.onnx"), variant="ocr", settings=settings,
        input_shapes=SHAPES,
    )  # fmt: skip
    assert profile.energy_source is None
    assert profile.energy_j_per_inference is None
    assert "energy_j_per_inference" not in json.dumps(profile.model_dump(exclude_none=True))


def test_energy_figures_need_a_source() -> None:
    doc = {
        "variant": "ocr", "provider": "CPUExecutionProvider", "source": "onnxruntime",
        "batches": [{"batch_size": 1, "runs": 1, "mean_ms": 1, "p50_ms": 1, "p95_ms": 1,
                     "p99_ms": 1, "throughput_per_s": 1000, "energy_j_per_inference": 0.005}],
    }  # fmt: skip
    from tierwise.bench.profiles import VariantProfile

    with pytest.raises(ValueError, match="energy_source"):
        VariantProfile.model_validate(doc)
    assert VariantProfile.model_validate(doc | {"energy_source": "estimated"}).single.runs == 1


def test_cli_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = conv_pool_model(tmp_path / "ocr.onnx")
    base = ["bench", "profile", "--model", f"ocr={model}", "--provider", "cpu", "--batch",
            "1,2", "--runs", "5", "--warmup", "1", "--input-shape", "x=3,16,16",
            "--rapl", "off"]  # fmt: skip
    code, out, err = run_cli([*base, "--active-watts", "4", "--idle-watts", "2", "--json"],
                             capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    doc = ProfileSet.model_validate(json.loads(out))
    profile = doc.profiles[0]
    assert profile.energy_source == "estimated"
    assert profile.batches[0].energy_j_per_inference == pytest.approx(
        4.0 * profile.batches[0].mean_ms / 1000.0
    )
    code, out, err = run_cli([*base, "--active-watts", "4"], capsys, monkeypatch)
    assert code == 0, err
    assert "J/inference" in out
    assert "estimated" in out
    code, _, err = run_cli([*base, "--idle-watts", "2"], capsys, monkeypatch)
    assert code == 2
    assert "--active-watts" in err
    code, _, err = run_cli([*base, "--active-watts", "2", "--idle-watts", "3"], capsys,
                           monkeypatch)  # fmt: skip
    assert code == 2
    assert "--idle-watts" in err
