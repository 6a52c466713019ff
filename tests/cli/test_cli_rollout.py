"""``tierwise control`` and ``tierwise rollout`` refuse what they cannot do before they
call anything, with a line that names the flag and what it expects (exit 2); a control
plane that does not answer is exit 1 with its address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from registry_helpers import make_keys
from score_models import run_cli


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["rollout", "start", "nope"], {}, "BUNDLE:VERSION"),
        (["rollout", "start", "d:2", "--stages", "50,10"], {}, "stages"),
        (["rollout", "start", "d:2", "--interval", "soon"], {}, "--interval"),
        (["rollout", "start", "d:2", "--gate", "latency=2"], {}, "gate"),
        (["rollout", "start", "d:2", "--stage-interval", "cannary=10s"], {}, "--stage-interval"),
        (["rollout", "start", "d:2", "--selector", "hw in pi5"], {}, "selector"),
        (["rollout", "list", "--control", "http://10.1.2.3:9100"],
         {"TIERWISE_TOKEN": "tw-not-to-be-echoed"},
         "https:// URL (or a loopback host) when a token is sent"),
        (["control", "nodes", "--control", "http://127.0.0.1:1", "--ca", "ca.pem"], {},
         "--ca"),
        (["rollout", "start", "d:2", "--threshold", "0"], {}, "--threshold: expected >= 1"),
        (["rollout", "start", "D:2"], {}, "BUNDLE:VERSION: expected text matching"),
        (["rollout", "start", "d:2", "--canary-selector", "a b"], {},
         "--canary-selector: expected an operator"),
        (["rollout", "start", "d:2", "--gate", "p99_ratio=abc"], {},
         "--gate p99_ratio: expected a number"),
        (["control", "nodes", "--selector", "=x", "--control", "http://127.0.0.1:1"], {},
         "--selector: expected a label key"),
        (["control", "desired", "d:2", "--selector", "a b", "--control", "http://127.0.0.1:1"],
         {}, "--selector: expected an operator"),
        (["control"], {}, "--store"),
        (["control", "--store", "c.db"], {}, "--registry"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_naming_the_flag(
    args: list[str], env: dict[str, str], words: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("TIERWISE_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2, err
    assert words in " ".join(err.split())
    assert "tw-not-to-be-echoed" not in err + out


def test_a_control_plane_that_does_not_answer_is_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(
        ["rollout", "status", "x", "--control", "http://127.0.0.1:1"], capsys, monkeypatch
    )
    assert code == 1
    assert "http://127.0.0.1:1 did not answer" in " ".join(err.split())


def test_a_registry_folder_that_is_not_a_store_fails_the_start(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    (tmp_path / "registry").mkdir()
    started = subprocess.run(
        [sys.executable, "-m", "tierwise", "control", "--store", str(tmp_path / "c.db"),
         "--registry", str(tmp_path / "registry"), "--trusted-key", str(keys.public_path),
         "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 1
    assert "is not a store" in started.stderr
    assert not (tmp_path / "registry" / "index.db").exists()  # nothing made in its place
