"""``tierwise control`` and ``tierwise rollout`` refuse what they cannot do before they
call anything, with a line that names the flag and what it expects (exit 2); a control
plane that does not answer is exit 1 with its address."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def tierwise(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args], capture_output=True, text=True,
        timeout=60, check=False, env=os.environ | env,
    )  # fmt: skip


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
        (["control"], {}, "--store"),
        (["control", "--store", "c.db"], {}, "--registry"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_naming_the_flag(
    args: list[str], env: dict[str, str], words: str
) -> None:
    result = tierwise(*args, **env)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert "tw-not-to-be-echoed" not in result.stderr + result.stdout


def test_a_control_plane_that_does_not_answer_is_exit_1() -> None:
    result = tierwise("rollout", "status", "x", "--control", "http://127.0.0.1:1")
    assert result.returncode == 1
    assert "http://127.0.0.1:1 did not answer" in result.stderr
