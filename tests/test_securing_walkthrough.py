"""The README's "Securing a fleet" section is run: its ``sh`` lines in order (tokens made
with ``tierwise keys token``, ``tierwise serve`` over TLS with a tokens file on a free
port, and real ``curl`` against it with the test CA), and its YAML blocks are read by the
settings models they document."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from binaries import require_binary
from security_helpers import TestCA, remember
from tierwise.planfile import parse_plan
from tierwise.router.clients import ClientLimits
from tierwise.security import AuthSettings, TlsServerSettings
from tierwise.zoo import load_eval

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Securing a fleet"
PORT = "8443"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"^{HEADING}\n.*?(?=^## )", text, flags=re.S | re.M)
    assert found is not None, f"README.md has no {HEADING!r} section"
    return found.group(0)


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def _curl(line: str, cwd: Path) -> tuple[int, str]:
    """Run a curl line as written (in bash, for ``$(cat ...)``), status code appended."""
    result = subprocess.run(
        ["bash", "-c", line + ' -w "\\n%{http_code}"'], cwd=cwd, env=_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{line}\n{result.stderr}"
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def _workspace(tmp: Path, zoo: Path) -> None:
    """What the section's commands read: a model repository, the server's certificate
    and the CA that signed it, and a request for the small model."""
    shutil.copytree(zoo / "small", tmp / "models" / "small")
    ca = TestCA(tmp / "pki")
    edge = ca.issue("edge", hosts=("localhost", "127.0.0.1"))
    shutil.copy(edge.cert, tmp / "edge.crt")
    shutil.copy(edge.key, tmp / "edge.key")
    shutil.copy(ca.ca_file, tmp / "ca.crt")
    x, _ = load_eval(zoo)
    request = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32",
                           "data": x[0].reshape(-1).tolist()}]}  # fmt: skip
    (tmp / "request.json").write_bytes(orjson.dumps(request))


def _wait_ready(url: str, ca: Path, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    verify = ssl.create_default_context(cafile=ca)
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited"
        try:
            if httpx.get(url, verify=verify, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready")


def test_the_sections_commands_run_as_written(tmp_path: Path, shared_zoo_dir: Path) -> None:
    require_binary("curl", "curl")
    _workspace(tmp_path, shared_zoo_dir)
    port = _free_port()
    lines = [line for line in blocks("sh")[0].splitlines() if line.strip()]
    server: subprocess.Popen[bytes] | None = None
    curls: list[tuple[int, str]] = []
    try:
        for line in lines:
            line = line.replace(PORT, port)
            if line.startswith("tierwise serve"):
                with (tmp_path / "serve.log").open("wb") as log:
                    server = subprocess.Popen(
                        shlex.split(line), cwd=tmp_path, env=_env(), stdout=log, stderr=log
                    )
                _wait_ready(
                    f"https://localhost:{port}/v2/health/ready", tmp_path / "ca.crt", server
                )
            elif line.startswith("curl"):
                curls.append(_curl(line, tmp_path))
            else:
                result = subprocess.run(
                    ["bash", "-c", line], cwd=tmp_path, env=_env(), capture_output=True,
                    text=True, timeout=120, check=False,
                )  # fmt: skip
                assert result.returncode == 0, f"{line}\n{result.stderr}"
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    tokens = {name: remember((tmp_path / f"{name}.token").read_text().strip())
              for name in ("line-7", "ops")}  # fmt: skip
    assert all(t.startswith("tw_") for t in tokens.values())
    hashes = (tmp_path / "tokens.txt").read_text()
    assert hashes.count("\n") == 2
    assert "client=line-7 scopes=infer " in hashes
    assert not any(t in hashes for t in tokens.values())
    assert oct((tmp_path / "tokens.txt").stat().st_mode & 0o777) == "0o600"
    (infer_status, infer_body), (unload_status, unload_body), (metrics_status, metrics) = curls
    assert infer_status == 200, infer_body
    assert orjson.loads(infer_body)["model_name"] == "small"
    assert unload_status == 403
    assert "needs scope 'admin'" in orjson.loads(unload_body)["error"]
    assert metrics_status == 200
    assert "tierwise_" in metrics
    served = (tmp_path / "serve.log").read_text()
    for text in (infer_body, unload_body, metrics, served):
        assert not any(t in text for t in tokens.values())


def test_the_sections_settings_are_what_the_models_read() -> None:
    auth_and_tls, clients, plan = (yaml.safe_load(b) for b in blocks("yaml"))
    auth = AuthSettings.model_validate(auth_and_tls["auth"])
    assert auth.open_scopes == ["telemetry"]
    assert auth.tokens_env[0].client == "line-7"
    assert TlsServerSettings.model_validate(auth_and_tls["tls"]).mutual
    limits = {name: ClientLimits.model_validate(v) for name, v in clients["clients"].items()}
    assert limits["line-7"].on_budget == "degrade"
    assert limits["analytics"].on_budget == "refuse"
    document = {
        "version": 1,
        **plan,
        "workloads": {"w": {"privacy": "public", "cascade": [{"tier": "cloud"}]}},
    }
    parsed = parse_plan(yaml.safe_dump(document), check_files=False)
    tls = parsed.tiers["cloud"].tls
    assert tls is not None
    assert tls.server_name == "cloud.example"


@pytest.mark.parametrize("flag", ["--tls-cert", "--tls-key", "--tokens-file", "--insecure"])
def test_every_flag_the_section_names_is_in_the_help(flag: str) -> None:
    assert flag in section()
    for verb in ("serve", "gateway", "agent"):
        result = subprocess.run(
            [sys.executable, "-m", "tierwise", verb, "--help"], capture_output=True,
            text=True, env=_env() | {"COLUMNS": "200"}, timeout=60, check=False,
        )  # fmt: skip
        assert flag in result.stdout, f"tierwise {verb} --help lacks {flag}"
