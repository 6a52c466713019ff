"""Fixtures shared across components."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tierwise.zoo import build_zoo


@pytest.fixture(scope="session")
def shared_zoo_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, list[str]]:
    """The one build of the model family (seed 0) per test session: its folder, how long
    it took (s) and the progress lines it printed. Treat the folder as read-only."""
    out = tmp_path_factory.getbasetemp() / "shared-zoo"
    lines: list[str] = []
    start = time.monotonic()
    build_zoo(out, seed=0, progress=lines.append)
    return out, time.monotonic() - start, lines


@pytest.fixture(scope="session")
def shared_zoo_dir(shared_zoo_build: tuple[Path, float, list[str]]) -> Path:
    """The model family (seed 0), built once per test session; treat it as read-only."""
    return shared_zoo_build[0]


@pytest.fixture(scope="session")
def seed1_zoo_build(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The model family at another seed (1), built once per test session through the CLI
    (``tierwise zoo build --out DIR --seed 1 --json``, from scratch): its folder and what
    the build printed. Treat the folder as read-only."""
    out = tmp_path_factory.getbasetemp() / "seed1-zoo"
    built = subprocess.run(
        [sys.executable, "-m", "tierwise", "zoo", "build", "--out", str(out), "--seed", "1",
         "--json"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return out, built


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: no token or private key the tests made appears in any log record."""
    yield
    from security_helpers import find_secret

    for record in caplog.records:
        found = find_secret(record.getMessage())
        assert found is None, f"a secret ({found}) was logged by {record.name}"
