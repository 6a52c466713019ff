"""The session's one zoo build (seed 0, ``shared_zoo_build`` in tests/conftest.py),
shared read-only by the zoo tests.

Tests that modify a zoo work on a copy (``zoo_copy``), never on the shared build.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tierwise.zoo import Zoo, load_zoo


@pytest.fixture(scope="session")
def built_zoo(shared_zoo_build: tuple[Path, float, list[str]]) -> tuple[Zoo, float, list[str]]:
    """The session's shared build (seed 0): the Zoo, the build time in seconds, progress
    lines."""
    out, seconds, lines = shared_zoo_build
    return load_zoo(out), seconds, lines


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
