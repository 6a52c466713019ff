"""Same seed, same bytes; another seed, other weights (and the ladder still holds)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tierwise.zoo import Zoo, build_zoo
from tierwise.zoo.files import sha256_of
from tierwise.zoo.manifest import load_zoo

pytestmark = pytest.mark.slow


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _weights(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.fixture(scope="module")
def other_seed(seed1_zoo_build: tuple[Path, subprocess.CompletedProcess[str]]) -> Zoo:
    """The session's seed-1 zoo (built through the CLI, tests/conftest.py)."""
    out, built = seed1_zoo_build
    assert built.returncode == 0, built.stderr
    return load_zoo(out, verify=True)


def test_same_seed_gives_identical_files(zoo: Zoo, zoo_copy: Path) -> None:
    """Rebuilding over an existing zoo (the harder case: old files in place) with the same
    seed reproduces the fresh session build byte for byte."""
    first = _hashes(zoo.root)
    assert len(first) == 14  # six models, their six references, eval.npz, zoo.json
    build_zoo(zoo_copy, seed=0)
    assert _hashes(zoo_copy) == first


def test_other_seed_gives_other_weights(zoo: Zoo, other_seed: Zoo) -> None:
    first, second = _hashes(zoo.root), _hashes(other_seed.root)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] != second[name], name
    for name in ("tiny", "small", "large"):
        a, b = _weights(zoo.model_path(name)), _weights(other_seed.model_path(name))
        assert a.keys() == b.keys()
        assert not np.allclose(a["layer1.weight"], b["layer1.weight"]), name
    assert other_seed.seed == 1


def test_ladder_holds_for_another_seed(other_seed: Zoo) -> None:
    accuracy = {v.name: v.accuracy for v in other_seed.variants}
    assert accuracy["tiny"] < accuracy["small"] < accuracy["large"]
    assert accuracy["large"] >= accuracy["tiny"] + 0.05
    for base in ("tiny", "small", "large"):
        assert abs(accuracy[f"{base}-int8"] - accuracy[base]) <= 0.01
