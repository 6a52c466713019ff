"""Layout of a built zoo, its zoo.json, the build time, and build-time argument checks."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import tierwise.zoo
from tierwise.errors import ConfigError, ZooError
from tierwise.zoo import (
    BUILDER_VERSION,
    Zoo,
    build_zoo,
    load_zoo,
    reference_path,
    variant_path,
    zoo_is_current,
)
from tierwise.zoo.files import sha256_of

VARIANTS = ["tiny", "tiny-int8", "small", "small-int8", "large", "large-int8"]
TIERS = {"tiny": "device", "small": "edge", "large": "cloud"}


def test_public_api() -> None:
    assert sorted(tierwise.zoo.__all__) == sorted(
        [
            "BUILDER_VERSION",
            "SHIFTS",
            "ZOO_SIGNATURE",
            "Shift",
            "Zoo",
            "ZooVariant",
            "build_zoo",
            "corrupt",
            "detection_trial",
            "drift_stream",
            "false_alarm_share",
            "load_eval",
            "load_zoo",
            "reference_for_model",
            "reference_path",
            "variant_path",
            "zoo_is_current",
        ]
    )


def test_layout_is_a_model_repository(zoo: Zoo) -> None:
    files = sorted(str(p.relative_to(zoo.root)) for p in zoo.root.rglob("*") if p.is_file())
    expected = sorted(
        [variant_path(name) for name in VARIANTS]
        + [reference_path(name) for name in VARIANTS]
        + ["eval.npz", "zoo.json"]
    )
    assert files == expected  # also: no temporary files left behind
    assert variant_path("tiny") == "tiny/1/model.onnx"


def test_manifest_describes_every_variant(zoo: Zoo) -> None:
    loaded = load_zoo(zoo.root, verify=True)
    assert loaded == zoo
    assert loaded.seed == 0
    assert loaded.builder_version == BUILDER_VERSION
    assert [v.name for v in loaded.variants] == VARIANTS
    for variant in loaded.variants:
        base = variant.name.removesuffix("-int8")
        path = zoo.root / variant.path
        assert variant.path == variant_path(variant.name)
        assert variant.tier == TIERS[base]
        assert variant.quantization == ("int8" if variant.name.endswith("-int8") else "fp32")
        assert variant.parent == (base if variant.quantization == "int8" else None)
        assert variant.size_bytes == path.stat().st_size
        assert variant.sha256 == sha256_of(path)
        assert 0.0 < variant.accuracy <= 1.0
    assert loaded.eval_sha256 == sha256_of(zoo.root / "eval.npz")
    assert zoo.model_path("small") == zoo.root / "small/1/model.onnx"
    with pytest.raises(ZooError, match="no variant 'huge'"):
        zoo.variant("huge")


def test_manifest_json_is_stable_text(zoo: Zoo) -> None:
    raw = (zoo.root / "zoo.json").read_bytes()
    document = orjson.loads(raw)
    assert list(document) == sorted(document)  # keys sorted
    assert document["eval"]["samples"] == zoo.eval_samples
    assert raw == zoo.to_json()


def test_int8_variants_are_smaller_for_real_models(zoo: Zoo) -> None:
    for base in ("small", "large"):
        assert zoo.variant(f"{base}-int8").size_bytes < zoo.variant(base).size_bytes
    assert zoo.variant("large").size_bytes > zoo.variant("small").size_bytes


def test_build_is_fast_and_reports_progress(built_zoo: tuple[Zoo, float, list[str]]) -> None:
    _, seconds, lines = built_zoo
    assert seconds < 60, f"build took {seconds:.1f}s"
    assert any(line.startswith("training large") for line in lines)
    assert lines[-1].startswith("wrote ")


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed_is_a_config_error(tmp_path: Path, seed: object) -> None:
    with pytest.raises(ConfigError, match="seed"):
        build_zoo(tmp_path / "zoo", seed=seed)  # type: ignore[arg-type]
    assert not (tmp_path / "zoo").exists()


def test_out_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a directory")
    with pytest.raises(ConfigError, match="out_dir"):
        build_zoo(target)


def test_failed_rebuild_leaves_no_manifest(zoo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that dies halfway must not leave an old zoo.json describing files in flux."""
    assert zoo_is_current(zoo_copy, 0)

    def broken(*args: object, **kwargs: object) -> None:
        raise ZooError("simulated quantizer failure")

    monkeypatch.setattr("tierwise.zoo.build.quantize_int8", broken)
    with pytest.raises(ZooError, match="simulated"):
        build_zoo(zoo_copy, seed=0)
    assert not (zoo_copy / "zoo.json").exists()
    assert not zoo_is_current(zoo_copy, 0)
    with pytest.raises(ZooError, match=r"no zoo\.json"):
        load_zoo(zoo_copy)
