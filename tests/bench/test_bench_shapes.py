"""`bench profile` times the shapes a model really sees: never a guessed size for a
dynamic dimension, the eval set's samples or `--input-shape` instead, recorded in
profiles.json; and the peak memory is the model's, not the eval set's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import conv_pool_model, eval_file, tierwise

from onnx_models import detector_model, fixed_batch_model, stateful_model
from tierwise.bench import (
    PROFILES_SCHEMA,
    EvalSet,
    MeasureSettings,
    TimedInput,
    dense_stack_model,
    load_profiles,
    profile_files,
    profile_model,
)
from tierwise.errors import ConfigError
from tierwise.runtime import read_signature

FAST = MeasureSettings(batch_sizes=(1, 4), runs=10, warmup_runs=2, max_seconds_per_batch=0.3)
QUICK = ("--batch", "1,4", "--runs", "5", "--warmup", "1", "--max-seconds", "0.2")


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conv_pool_model(tmp_path_factory.mktemp("conv") / "conv.onnx")


def test_symbolic_dims_are_refused_naming_the_input_dims_and_flag(conv: Path) -> None:
    with pytest.raises(ConfigError) as info:
        profile_model(conv, variant="ocr", settings=FAST)
    message = str(info.value)
    assert "input 'x' [N, 3, H, W]" in message
    assert "'H' (axis 2), 'W' (axis 3)" in message
    assert "--input-shape x=3,<H>,<W>" in message
    assert "--eval" in message


def test_cli_refuses_without_a_shape_and_writes_nothing(conv: Path, tmp_path: Path) -> None:
    out = tmp_path / "profiles.json"
    result = tierwise("bench", "profile", "--model", f"ocr={conv}", *QUICK, "-o", str(out))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "input 'x'" in lines[0]
    assert "'H' (axis 2)" in lines[0]
    assert "--input-shape x=" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("given", ["3,40,56", "1,3,40,56"], ids=["row", "full"])
def test_cli_times_the_flag_shape_and_records_it(conv: Path, tmp_path: Path, given: str) -> None:
    out = tmp_path / "profiles.json"
    result = tierwise(
        "bench", "profile", "--model", f"ocr={conv}", "--input-shape", f"x={given}",
        *QUICK, "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ocr timed at x [N, 3, 40, 56] (from --input-shape)" in result.stdout
    (profile,) = load_profiles(out).profiles
    assert profile.inputs == [
        TimedInput(name="x", datatype="FP32", shape=[3, 40, 56], batched=True, source="flag")
    ]
    assert [b.batch_size for b in profile.batches] == [1, 4]
    assert json.loads(out.read_text())["schema"] == PROFILES_SCHEMA


def test_a_big_shape_times_slower_than_one_pixel(conv: Path) -> None:
    settings = MeasureSettings(batch_sizes=(1,), runs=30, warmup_runs=3, max_seconds_per_batch=1)
    tiny = profile_model(conv, variant="ocr", settings=settings, input_shapes={"x": (3, 1, 1)})
    big = profile_model(conv, variant="ocr", settings=settings, input_shapes={"x": (3, 96, 96)})
    # 9,216 pixels through two 16-channel convolutions against one: the guessed [1, 3, 1, 1]
    # the issue saw measured a computation thousands of times cheaper
    assert big.single.p50_ms > 5 * tiny.single.p50_ms


def test_eval_samples_are_timed_recorded_and_scored(conv: Path, tmp_path: Path) -> None:
    data = eval_file(tmp_path / "eval.npz", 40, (3, 24, 32), name="pixels")
    profile = profile_model(conv, variant="ocr", settings=FAST, eval_data=EvalSet.load(data))
    assert profile.inputs == [
        TimedInput(name="x", datatype="FP32", shape=[3, 24, 32], batched=True, source="eval")
    ]
    assert profile.accuracy is not None
    assert profile.eval_samples == 40


def test_cli_eval_without_labels_times_its_shape(conv: Path, tmp_path: Path) -> None:
    data = tmp_path / "rows.npz"
    np.savez(data, x=np.zeros((6, 3, 16, 20), np.float32))
    result = tierwise(
        "bench", "profile", "--model", f"ocr={conv}", "--eval", str(data), *QUICK, "--json"
    )
    assert result.returncode == 0, result.stderr
    (profile,) = json.loads(result.stdout)["profiles"]
    assert profile["inputs"][0]["shape"] == [3, 16, 20]
    assert profile["inputs"][0]["source"] == "eval"
    assert profile["accuracy"] is None


@pytest.mark.parametrize(
    ("arrays", "shapes", "needle"),
    [
        ({"x": np.zeros((4, 4, 8, 8), np.float32)}, None, "fit [N, 3, H, W]"),
        ({"x": np.zeros((4, 3, 8, 8), np.float32)}, {"x": (3, 9, 9)}, "shape of the eval"),
        ({"a": np.zeros((4, 3, 8, 8)), "b": np.zeros((4, 3, 8, 8))}, None, "unknown arrays"),
        ({"x": np.zeros((4, 3, 8, 8)), "labels": np.zeros((5,))}, None, "same number"),
        ({"x": np.zeros((4, 3, 8, 8), np.complex64)}, None, "convert to FP32"),
    ],
    ids=["channels", "flag-disagrees", "ambiguous", "label-count", "dtype"],
)
def test_eval_that_does_not_fit_is_refused(
    conv: Path,
    arrays: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]] | None,
    needle: str,
) -> None:
    with pytest.raises(ConfigError, match=r"^(eval|input_shapes): ") as info:
        profile_model(
            conv, variant="ocr", settings=FAST, eval_data=EvalSet(arrays), input_shapes=shapes
        )
    assert needle in str(info.value)


def test_peak_memory_is_the_models_not_the_eval_sets(conv: Path, tmp_path: Path) -> None:
    # 700 samples of [3, 48, 64] FP32: a 26 MiB eval set, whose accuracy pass (chunks of
    # 512 samples through 16-channel convolutions) alone needs hundreds of MiB
    data = eval_file(tmp_path / "big.npz", 700, (3, 48, 64))
    peaks = {}
    for name, source in (("flag", ["--input-shape", "x=3,48,64"]), ("eval", ["--eval", str(data)])):
        result = tierwise(
            "bench", "profile", "--model", f"ocr={conv}", *source, "--provider", "cpu",
            *QUICK, "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (profile,) = json.loads(result.stdout)["profiles"]
        assert profile["inputs"][0]["source"] == name
        peaks[name] = profile["peak_memory_mib"]
    assert peaks["flag"] is not None
    assert peaks["eval"] is not None
    assert peaks["eval"] <= 1.5 * peaks["flag"] + 4, peaks


def test_concrete_models_need_no_flag(tmp_path: Path) -> None:
    dense = dense_stack_model(tmp_path / "dense.onnx", width=16, depth=2, in_width=5)
    fixed = fixed_batch_model(tmp_path / "fixed.onnx")
    profiles = profile_files({"dense": dense, "fixed": fixed}, providers=["cpu"], settings=FAST)
    by_name = {p.variant: p for p in profiles.profiles}
    assert by_name["dense"].inputs == [
        TimedInput(name="x", datatype="FP32", shape=[5], batched=True, source="signature")
    ]
    assert [b.batch_size for b in by_name["dense"].batches] == [1, 4]
    # no batch dimension (the first is fixed): timed once, at its whole shape
    assert by_name["fixed"].inputs == [
        TimedInput(name="x", datatype="FP32", shape=[1, 2], batched=False, source="signature")
    ]
    assert [b.batch_size for b in by_name["fixed"].batches] == [1]


def test_a_model_without_a_batch_dimension_takes_whole_shapes(tmp_path: Path) -> None:
    model = stateful_model(tmp_path / "vad.onnx")
    with pytest.raises(ConfigError) as info:
        profile_model(model, variant="vad", settings=FAST)
    assert "input 'input'" in str(info.value)
    assert "no batch dimension" in str(info.value)
    assert "(the whole shape)" in str(info.value)
    profile = profile_model(
        model, variant="vad", settings=FAST, input_shapes={"input": (2, 16), "state": (2, 2, 8)}
    )
    assert profile.inputs is not None
    assert [(t.name, t.shape, t.batched, t.source) for t in profile.inputs] == [
        ("input", [2, 16], False, "flag"),
        ("sr", [], False, "signature"),
        ("state", [2, 2, 8], False, "flag"),
    ]
    assert [b.batch_size for b in profile.batches] == [1]


def test_every_variant_is_checked_before_any_is_measured(conv: Path, tmp_path: Path) -> None:
    detector = detector_model(tmp_path / "det.onnx")
    with pytest.raises(ConfigError, match="input 'images'"):
        profile_files(
            {"ocr": conv, "det": detector}, providers=["cpu"], settings=FAST,
            input_shapes={"x": (3, 8, 8)},
            progress=lambda *_: pytest.fail("measured before every shape was known"),
        )  # fmt: skip


def test_a_detector_is_timed_at_its_real_size(tmp_path: Path) -> None:
    # at a guessed 1 x 1 its upsampled map no longer matches the earlier one and
    # onnxruntime's Concat fails; at a real size it runs
    detector = detector_model(tmp_path / "det.onnx")
    assert read_signature(detector).batch_dynamic
    profile = profile_model(
        detector, variant="det", settings=FAST, input_shapes={"images": (3, 32, 32)}
    )
    assert profile.inputs is not None
    assert profile.inputs[0].shape == [3, 32, 32]


@pytest.mark.parametrize(
    "items",
    [["x"], ["x=3,a"], ["x=0,3"], ["=3"], ["x=3,4", "x=3,5"]],
    ids=["no-equals", "not-a-number", "zero", "no-name", "twice"],
)
def test_cli_malformed_input_shape_exits_2(conv: Path, items: list[str]) -> None:
    flags = [arg for item in items for arg in ("--input-shape", item)]
    result = tierwise("bench", "profile", "--model", str(conv), *QUICK, *flags)
    assert result.returncode == 2
    assert "--input-shape" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_input_shape_for_an_unknown_input_exits_2(conv: Path) -> None:
    result = tierwise("bench", "profile", "--model", str(conv), "--input-shape", "y=3", *QUICK)
    assert result.returncode == 2
    assert "input_shapes: expected names of inputs of the models measured, got ['y']" in (
        result.stderr
    )
