"""``tierwise keys token``: a token printed once, its hash line printed or appended to a
tokens file (mode 0600), and a tier server that accepts the token from that file."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from onnx_models import scale_model
from security_helpers import find_secret, remember
from server_helpers import running_server
from tierwise.security import AuthSettings, TokenStore, parse_token_lines
from tierwise.server import ServerSettings

TOKEN = re.compile(r"tw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def tierwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    for found in TOKEN.findall(result.stdout):
        remember(found)  # the suite's log scan then proves it is never logged
    return result


def test_token_and_hash_line_printed(tmp_path: Path) -> None:
    result = tierwise("keys", "token", "--client", "line-7", "--scope", "infer,telemetry",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    token, line = result.stdout.strip().splitlines()
    assert TOKEN.fullmatch(token)
    assert result.stdout.count(token) == 1  # once
    assert "store it now" in result.stderr
    assert find_secret(result.stderr) is None
    assert token not in line
    (record,) = parse_token_lines(line, "stdout")
    assert record.client == "line-7"
    assert record.scopes == {"infer", "telemetry"}
    principal = TokenStore([record]).authenticate(f"Bearer {token}")
    assert principal is not None
    assert principal.client == "line-7"


def test_append_makes_a_private_tokens_file_a_server_accepts(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    first = tierwise("keys", "token", "--client", "ops", "--scope", "admin",
                     "--append", str(path), cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text(path.read_text().rstrip("\n"))  # a file edited by hand, no final newline
    second = tierwise("keys", "token", "--client", "app", "--scope", "infer",
                      "--append", str(path), "--json", cwd=tmp_path)  # fmt: skip
    assert second.returncode == 0, second.stderr
    ops_token = first.stdout.strip()
    assert TOKEN.fullmatch(ops_token)  # only the token on stdout
    doc = json.loads(second.stdout)
    assert doc["client"] == "app"
    assert doc["scopes"] == ["infer"]
    assert doc["appended_to"] == str(path)
    assert "hash_line" not in doc
    text = path.read_text()
    assert find_secret(text) is None
    assert len(text.splitlines()) == 2
    records = parse_token_lines(text, str(path))
    assert [r.client for r in records] == ["ops", "app"]
    assert records[1].key_id == doc["id"]

    repo = tmp_path / "repo"
    scale_model(repo / "scale" / "1" / "model.onnx", 2.0)
    settings = ServerSettings(model_repo=repo, auth=AuthSettings(tokens_file=path))
    with running_server(settings) as server, httpx.Client(base_url=server.url) as c:
        app = {"Authorization": f"Bearer {doc['token']}"}
        ops = {"Authorization": f"Bearer {ops_token}"}
        assert c.get("/v2/models/scale", headers=app).status_code == 200
        assert c.post("/v2/repository/index", json={}, headers=app).status_code == 403
        assert c.post("/v2/repository/index", json={}, headers=ops).status_code == 200


def test_unknown_scope_or_bad_client_is_one_line(tmp_path: Path) -> None:
    result = tierwise("keys", "token", "--client", "a", "--scope", "infer,root", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: --scope: expected one or more of infer, admin, telemetry, got ['root']"
    ]
    bad = tierwise("keys", "token", "--client", "a b", "--scope", "infer", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "client" in bad.stderr


def test_help(tmp_path: Path) -> None:
    result = tierwise("keys", "token", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in ("--client", "--scope", "--append", "--json"):
        assert flag in result.stdout
    assert "store it now" in result.stdout
