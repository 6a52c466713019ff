"""One zoo built per test session (seed 0), shared read-only by the zoo tests.

Tests that modify a zoo work on a copy (``zoo_copy``), never on the shared build.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tierwise.zoo import Zoo, build_zoo

SEED = 0


@pytest.fixture(scope="session")
def built_zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Zoo, float, list[str]]:
    """The shared build: the returned Zoo, the build time in seconds, progress lines."""
    out = tmp_path_factory.mktemp("zoo-seed0")
    lines: list[str] = []
    start = time.monotonic()
    zoo = build_zoo(out, seed=SEED, progress=lines.append)
    return zoo, time.monotonic() - start, lines


@pytest.fixture(scope="session")
def zoo(built_zoo: tuple[Zoo, float, list[str]]) -> Zoo:
    return built_zoo[0]


@pytest.fixture
def zoo_copy(zoo: Zoo, tmp_path: Path) -> Path:
    """A private copy of the shared zoo directory, free to damage."""
    target = tmp_path / "zoo"
    shutil.copytree(zoo.root, target)
    return target


@pytest.fixture(scope="session")
def run_model() -> Callable[[Path, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Run an ONNX file with onnxruntime: (probabilities, labels) for a batch of images."""

    def run(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        probabilities, labels = session.run(["probabilities", "label"], {"image": images})
        return np.asarray(probabilities), np.asarray(labels)

    return run
