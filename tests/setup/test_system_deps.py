"""scripts/system-deps.sh, the one install script of `make demo`, `make test` and .ci/run,
run against a PATH of stand-ins: each package it should install is missing in turn, the
user is root or not, and apt-get records what it was asked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from binaries import in_ci, require_binary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "system-deps.sh"
BASH = "/bin/bash"

# binary stand-in -> the Debian package that brings it
BINARIES = {
    "make": "make",
    "docker-registry": "docker-registry",
    "chromium": "chromium",
    "curl": "curl",
    "prometheus": "prometheus",
    "postgres": "postgresql",
    "nats-server": "nats-server",
    "systemd-analyze": "systemd",
    "node": "nodejs",
    "npm": "npm",
}


def _stub(folder: Path, name: str, body: str = "exit 0") -> None:
    path = folder / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def _machine(
    tmp: Path,
    *,
    lacks: tuple[str, ...] = (),
    uid: int = 0,
    venv: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """A folder to use as PATH: every tool the script looks for but those in ``lacks``."""
    folder = tmp / "bin"
    folder.mkdir()
    for name in (*BINARIES, *extra):
        if name not in lacks:
            _stub(folder, name)
    _stub(folder, "id", f"echo {uid}")
    # python3 -c 'import venv, ensurepip' succeeds only where python3-venv is installed
    _stub(folder, "python3", "exit 0" if venv else "exit 1")
    _stub(folder, "apt-get", f'echo "$*" >> {tmp}/apt.log')
    return folder


def _run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Debian's PostgreSQL lives off PATH; point the script at an empty stand-in for it
    env = {"PATH": str(path), "HOME": str(path.parent), "PG_LIB_DIR": str(path.parent / "pglib")}
    return subprocess.run(
        [BASH, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("binary", list(BINARIES))
def test_dry_run_names_each_missing_package(tmp_path: Path, binary: str) -> None:
    result = _run(_machine(tmp_path, lacks=(binary,)), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"would install: {BINARIES[binary]}"
    assert not (tmp_path / "apt.log").exists()


def test_dry_run_names_python_venv(tmp_path: Path) -> None:
    result = _run(_machine(tmp_path, venv=False), "--dry-run")
    assert result.stdout.strip() == "would install: python3-venv"


def test_dry_run_names_everything_missing_at_once(tmp_path: Path) -> None:
    result = _run(_machine(tmp_path, lacks=tuple(BINARIES), venv=False), "--dry-run")
    assert result.stdout.split(": ")[1].split() == [
        "make", "python3-venv", "docker-registry", "chromium", "curl", "prometheus",
        "postgresql", "nats-server", "systemd", "nodejs", "npm",
    ]  # fmt: skip


def test_groups_ask_for_what_they_use(tmp_path: Path) -> None:
    path = _machine(tmp_path, lacks=tuple(BINARIES))
    # the demo needs no registry and no browser; benchmarks add wrk
    assert _run(path, "--dry-run", "demo").stdout.strip() == "would install: make"
    bench = _run(path, "--dry-run", "bench").stdout.split(": ")[1].split()
    assert bench == [
        "make", "docker-registry", "chromium", "curl", "prometheus", "postgresql",
        "nats-server", "systemd", "nodejs", "npm", "wrk",
    ]  # fmt: skip


def test_nothing_missing(tmp_path: Path) -> None:
    path = _machine(tmp_path, extra=("wrk",))
    for group in ("demo", "test", "bench"):
        result = _run(path, "--dry-run", group)
        assert result.stdout.strip() == "nothing to install", group
    quiet = _run(path)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert not (tmp_path / "apt.log").exists()


def test_postgres_off_path_in_debians_folder_counts(tmp_path: Path) -> None:
    path = _machine(tmp_path, lacks=("postgres",))
    assert _run(path, "--dry-run").stdout.strip() == "would install: postgresql"
    # Debian's package: /usr/lib/postgresql/<version>/bin/postgres, not on PATH
    versioned = tmp_path / "pglib" / "15" / "bin"
    versioned.mkdir(parents=True)
    _stub(versioned, "postgres")
    assert _run(path, "--dry-run").stdout.strip() == "nothing to install"


def test_root_installs_with_apt_get(tmp_path: Path) -> None:
    result = _run(_machine(tmp_path, lacks=("docker-registry", "chromium")))
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == ["update -qq", "install -y -qq docker-registry chromium"]


def test_non_root_is_told_the_command_and_fails(tmp_path: Path) -> None:
    result = _run(_machine(tmp_path, lacks=("chromium",), uid=1000))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.endswith("run: sudo apt-get update && sudo apt-get install -y chromium")
    assert not (tmp_path / "apt.log").exists()


def test_unknown_argument(tmp_path: Path) -> None:
    result = _run(_machine(tmp_path), "--dryrun")
    assert result.returncode == 2
    assert "unknown argument '--dryrun'" in result.stderr


def test_make_and_ci_share_the_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/system-deps.sh test" in makefile
    assert "scripts/system-deps.sh demo" in makefile
    assert "scripts/system-deps.sh test" in ci
    assert ci.index("bash scripts/system-deps.sh") < ci.index("\nmake test")
    assert "apt-get" not in ci


def test_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="no-such-tool is not installed: run scripts"):
        require_binary("no-such-tool")


def test_missing_binary_skip_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_binary("no-such-tool", "some-package")
    assert "scripts/system-deps.sh test" in str(skipped.value)
    assert "apt-get install some-package" in str(skipped.value)


def test_present_binary_is_found() -> None:
    assert Path(require_binary("sh")).name == "sh"
