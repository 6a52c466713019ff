"""Profiles of the real zoo on onnxruntime, and the profiles.json schema read back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tierwise.bench import (
    PROFILES_SCHEMA,
    MeasureSettings,
    ProfileSet,
    load_profiles,
    parse_profiles,
    profile_model,
    profile_zoo,
    save_profiles,
)
from tierwise.errors import ConfigError, ModelLoadError, ProfileError, ProviderUnavailableError
from tierwise.zoo import load_zoo

FAST = MeasureSettings(batch_sizes=(1, 8), runs=20, warmup_runs=3, max_seconds_per_batch=0.2)


@pytest.fixture(scope="module")
def zoo_profiles(shared_zoo_dir: Path) -> ProfileSet:
    return profile_zoo(shared_zoo_dir, providers=["cpu"], settings=FAST, tiers=["edge"])


def test_every_zoo_variant_is_measured_with_its_accuracy(
    zoo_profiles: ProfileSet, shared_zoo_dir: Path
) -> None:
    zoo = load_zoo(shared_zoo_dir)
    assert [p.variant for p in zoo_profiles.profiles] == [v.name for v in zoo.variants]
    for profile, variant in zip(zoo_profiles.profiles, zoo.variants, strict=True):
        assert profile.provider == "CPUExecutionProvider"
        assert profile.accuracy == pytest.approx(variant.accuracy, abs=1e-9)
        assert profile.eval_samples == zoo.eval_samples
        assert profile.sha256 == variant.sha256
        assert profile.size_bytes == variant.size_bytes
        assert [b.batch_size for b in profile.batches] == [1, 8]
        for b in profile.batches:
            assert 1 <= b.runs <= 20
            assert b.p50_ms <= b.p95_ms <= b.p99_ms
            assert b.throughput_per_s == pytest.approx(b.batch_size * 1000.0 / b.mean_ms)
    assert zoo_profiles.tiers == ["edge"]
    assert zoo_profiles.host.cpu_cores is not None
    assert zoo_profiles.settings.runs == 20


def test_peak_memory_grows_with_the_model(tmp_path: Path) -> None:
    from tierwise.bench import dense_stack_model

    small = dense_stack_model(tmp_path / "small.onnx", width=64, depth=2)
    big = dense_stack_model(tmp_path / "big.onnx", width=1024, depth=8)  # 32 MiB of weights
    settings = MeasureSettings(batch_sizes=(1,), runs=3, warmup_runs=1)
    small_mib = profile_model(small, variant="s", settings=settings).peak_memory_mib
    big_mib = profile_model(big, variant="b", settings=settings).peak_memory_mib
    assert small_mib is not None
    assert big_mib is not None
    assert big_mib > 30 > small_mib


def test_round_trip_through_json(zoo_profiles: ProfileSet, tmp_path: Path) -> None:
    path = save_profiles(zoo_profiles, tmp_path / "profiles.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == PROFILES_SCHEMA
    assert load_profiles(path) == zoo_profiles


def _doc(zoo_profiles: ProfileSet) -> dict[str, Any]:
    return copy.deepcopy(zoo_profiles.to_dict())


@pytest.mark.parametrize(
    ("edit", "path", "needle"),
    [
        (lambda d: d.update(schema="tierwise.profiles/9"), "schema", "expected schema"),
        (lambda d: d.pop("schema"), "schema", "field required: schema"),
        (lambda d: d["profiles"][1].pop("variant"), "profiles[1].variant", "field required"),
        (
            lambda d: d["profiles"][0]["batches"][0].update(p99_ms=0.000001),
            "profiles[0].batches[0]",
            "expected p50_ms <= p95_ms <= p99_ms",
        ),
        (
            lambda d: d["profiles"][2].update(accuracy=1.5),
            "profiles[2].accuracy",
            "expected a number <= 1",
        ),
        (
            lambda d: d["profiles"][0].update(latncy=1),
            "profiles[0]",
            "unknown field 'latncy'",
        ),
        (
            lambda d: d["profiles"].append(copy.deepcopy(d["profiles"][0])),
            "<root>",
            "is measured twice",
        ),
        (
            lambda d: d["profiles"][0]["batches"].reverse(),
            "profiles[0]",
            "distinct batch sizes in increasing order",
        ),
    ],
    ids=["schema", "no-schema", "no-variant", "p99", "accuracy", "typo", "twice", "order"],
)
def test_bad_documents_name_the_field(
    zoo_profiles: ProfileSet, edit: Any, path: str, needle: str
) -> None:
    doc = _doc(zoo_profiles)
    edit(doc)
    with pytest.raises(ProfileError) as info:
        parse_profiles(json.dumps(doc), "p.json")
    assert info.value.file == "p.json"
    assert info.value.path == path or (path == "<root>" and info.value.path in ("", "<root>"))
    assert needle in str(info.value)
    assert str(info.value).startswith("p.json")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profiles(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="invalid JSON"):
        load_profiles(bad)


def test_bad_settings_and_inputs(shared_zoo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_sizes"):
        MeasureSettings(batch_sizes=(1, 1))
    with pytest.raises(ConfigError, match="batch_sizes"):
        MeasureSettings(batch_sizes=(0,))
    with pytest.raises(ConfigError, match="runs"):
        MeasureSettings(runs=0)
    with pytest.raises(ProviderUnavailableError):
        profile_model(shared_zoo_dir / "tiny/1/model.onnx", variant="t", provider="bogus")
    with pytest.raises(ModelLoadError, match="no model file"):
        profile_model(tmp_path / "none.onnx", variant="t")


V1_DOCUMENT = {
    "schema": "tierwise.profiles/1",
    "created_at": "2024-05-01T12:00:00Z",
    "host": {"label": "laptop", "cpu_cores": 8, "onnxruntime": "1.18.0"},
    "tiers": ["store-edge"],
    "settings": {"runs": 200, "warmup_runs": 10, "max_seconds_per_batch": 2.0},
    "profiles": [
        {
            "model": "digits", "variant": "small", "provider": "CPUExecutionProvider",
            "source": "onnxruntime", "path": "/models/small/1/model.onnx", "sha256": "ab",
            "url": None, "includes_network": False, "size_bytes": 29593,
            "peak_memory_mib": 3.1, "accuracy": 0.924, "eval_samples": 1617,
            "batches": [
                {"batch_size": 1, "runs": 200, "mean_ms": 0.02, "p50_ms": 0.02,
                 "p95_ms": 0.03, "p99_ms": 0.05, "throughput_per_s": 48000.0},
            ],
        }
    ],
}  # fmt: skip


def test_version_1_files_still_load_and_are_written_as_the_current_version(
    tmp_path: Path,
) -> None:
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(V1_DOCUMENT))
    loaded = load_profiles(old)
    (profile,) = loaded.profiles
    assert profile.inputs is None  # what a version-1 file timed is unknown
    assert profile.single.p50_ms == pytest.approx(0.02)
    assert loaded.tiers == ["store-edge"]
    again = save_profiles(loaded, tmp_path / "v2.json")
    assert json.loads(again.read_text())["schema"] == PROFILES_SCHEMA == "tierwise.profiles/2"
    assert load_profiles(again) == loaded


def test_a_version_1_file_cannot_carry_version_2_fields() -> None:
    doc = copy.deepcopy(V1_DOCUMENT)
    doc["profiles"][0]["inputs"] = []  # type: ignore[index]
    with pytest.raises(ProfileError) as info:
        parse_profiles(json.dumps(doc), "v1.json")
    assert info.value.path == "profiles[0].inputs"
    assert "tierwise.profiles/1" in str(info.value)


def test_timed_inputs_are_validated(zoo_profiles: ProfileSet) -> None:
    doc = _doc(zoo_profiles)
    assert doc["profiles"][0]["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [8, 8], "batched": True, "source": "eval"}
    ]
    doc["profiles"][0]["inputs"][0]["source"] = "guess"
    with pytest.raises(ProfileError) as info:
        parse_profiles(json.dumps(doc), "p.json")
    assert info.value.path == "profiles[0].inputs[0].source"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": 0}, "runs: expected >= 1, got 0"),
        ({"warmup_runs": True}, "warmup_runs: expected a valid integer, got True"),
        ({"max_seconds_per_batch": 0}, "max_seconds_per_batch: expected > 0.0, got 0"),
        ({"batch_sizes": (8, 8)}, "batch_sizes: expected distinct sizes, got [8, 8]"),
        ({"batch_sizes": (1, 70_000)}, "batch_sizes: expected whole numbers in [1, 65536], "
         "got [1, 70000]"),
    ],
)  # fmt: skip
def test_measure_settings_say_what_was_expected_and_got(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        MeasureSettings(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message
