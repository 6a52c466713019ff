"""The README's examples are run: every `tierwise` command line of its shell blocks, the
`curl` calls against the server it starts, and its config.yaml example."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

from tierwise.server import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# "Bring your own model" has a test of its own (test_byom_walkthrough.py), which runs its
# servers side by side and checks what each step wrote; so has "Securing a fleet"
# (test_securing_walkthrough.py), whose server speaks TLS
BYOM = re.search(r"^## Bring your own model\n.*?(?=^## )", README, flags=re.S | re.M)
SECURING = re.search(r"^## Securing a fleet\n.*?(?=^## )", README, flags=re.S | re.M)
BLOCKS = re.findall(
    r"```(\w+)\n(.*?)```",
    README.replace(BYOM.group(0), "").replace(SECURING.group(0), "")
    if BYOM and SECURING
    else README,
    flags=re.S,
)


def _lines(kind: str) -> list[str]:
    return [
        line.split("#", 1)[0].strip()
        for lang, body in BLOCKS
        if lang == kind
        for line in body.splitlines()
        if line.split("#", 1)[0].strip()
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_has_the_bring_your_own_model_section() -> None:
    assert BYOM is not None
    assert "tierwise calibrate --model" in BYOM.group(0)


def test_readme_has_the_securing_a_fleet_section() -> None:
    assert SECURING is not None
    assert "tierwise keys token" in SECURING.group(0)


def test_readme_opens_with_the_two_commands() -> None:
    first = _lines("sh")[:2]
    assert first == ["make demo", "make test"]


def test_config_example_is_a_valid_model_config() -> None:
    (config,) = [body for lang, body in BLOCKS if lang == "yaml" and "batching:" in body]
    parsed = ModelConfig.model_validate(yaml.safe_load(config))
    assert parsed.batching.max_batch_size == 64
    assert parsed.runtime == "onnxruntime"
    assert parsed.onnx.providers == ["cpu"]


def test_shell_examples_run(tmp_path: Path, shared_zoo_dir: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    # the README's `tierwise zoo build --out models --seed 0` finds this zoo current and
    # keeps it (building one from scratch is tests/cli/test_cli.py's to check)
    shutil.copytree(shared_zoo_dir, tmp_path / "models")
    # and `tierwise demo` finds it current in its own folder (the example plans use it)
    shutil.copytree(shared_zoo_dir, tmp_path / ".tierwise" / "zoo")
    server: subprocess.Popen[bytes] | None = None
    base = ""
    ran = 0
    try:
        for line in _lines("sh"):
            if line.startswith("make "):
                continue  # the Makefile targets are what CI itself runs
            if line.startswith(("tierwise serve", "tierwise gateway", "tierwise agent --config")):
                if server is not None:
                    _stop(server)
                port = _free_port()
                line = re.sub(r"--gateway-port \d+", f"--gateway-port {_free_port()}", line)
                args = shlex.split(re.sub(r"--port \d+", f"--port {port}", line))
                # the example plan's cloud tier takes its Authorization header from here
                env = _env() | {"TIERWISE_CLOUD_AUTH": "Bearer readme-test"}
                server = subprocess.Popen(args, cwd=tmp_path, env=env)
                base = f"http://127.0.0.1:{port}"
                _wait_ready(base, server)
            elif line.startswith("curl"):
                _run_curl(line, base, tmp_path)
            else:
                if line == "tierwise demo":
                    # a short replay: every step of the story runs (the full-length replay
                    # is the same code, and costs most of a minute more here)
                    line += " --requests 150"
                result = subprocess.run(
                    line, shell=True, cwd=tmp_path, env=_env(), capture_output=True,
                    text=True, timeout=300, check=False,
                )  # fmt: skip
                assert result.returncode == 0, f"{line}\n{result.stderr}"
            ran += 1
    finally:
        if server is not None:
            _stop(server)
    assert ran >= 11


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


def test_python_example_runs(tmp_path: Path, shared_zoo_dir: Path) -> None:
    (code,) = [body for lang, body in BLOCKS if lang == "python"]
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(shared_zoo_dir, tmp_path / ".tierwise" / "zoo")  # current: kept
    zoo = subprocess.run(
        [sys.executable, "-m", "tierwise", "zoo", "build", "--out", ".tierwise/zoo"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert zoo.returncode == 0, zoo.stderr
    script = code + "\nasyncio.run(main())\n"
    env = _env() | {"TIERWISE_CLOUD_AUTH": "Bearer readme-test"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    tier, degraded, _ = result.stdout.split(" ", 2)
    # no edge or cloud server runs here: the device answers, degraded when unsure
    assert tier == "device"
    assert degraded in ("True", "False")


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "tierwise serve exited"
        try:
            if httpx.get(base + "/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("server never became ready")


def _run_curl(line: str, base: str, cwd: Path) -> None:
    args = shlex.split(line)
    url = next(a for a in args if a.startswith("localhost:"))
    url = base + url[url.index("/") :]
    if "-d" in args:
        body = (cwd / args[args.index("-d") + 1].lstrip("@")).read_bytes()
        response = httpx.post(url, content=body)
        assert response.status_code == 200, response.text
        probabilities = response.json()["outputs"][0]["data"]
        assert np.isclose(sum(probabilities), 1.0, atol=1e-4)
    else:
        assert httpx.get(url).status_code == 200
