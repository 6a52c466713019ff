"""System binaries the tests need: found, or a failure under CI, or a skip that says how to
install them. Never a silent skip."""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["INSTALL_HINT", "in_ci", "require_binary"]

INSTALL_HINT = "scripts/system-deps.sh test (as root; make test runs it)"


def in_ci() -> bool:
    """True when the CI environment variable is set to true (as CI services do)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_binary(name: str, package: str | None = None) -> str:
    """The path of ``name`` on PATH. Missing, it fails the test under ``CI=true`` and skips
    it elsewhere; both name the command that installs it (Debian package ``package``,
    which defaults to the binary's name)."""
    found = shutil.which(name)
    if found is not None:
        return found
    reason = f"{name} is not installed: run {INSTALL_HINT}, or apt-get install {package or name}"
    if in_ci():
        pytest.fail(f"{reason} [CI=true: a missing binary is a failure]", pytrace=False)
    pytest.skip(reason)
