"""The README's "Bring your own model" section is run, command by command, on a model the
zoo did not make (``examples/byom/export.py``: scikit-learn's breast-cancer data, exported
with skl2onnx, outputs ``diagnosis`` and ``scores``).

Every line of the section's ``sh`` blocks runs in a copy of ``examples/``: ``tierwise
serve`` and ``tierwise gateway`` start and stay up together (the gateway's plan points
its cloud tier at the server), on free ports that replace the section's in every line;
``curl`` lines are sent with httpx to the server they name. Each command is one test;
the checks after them read what the commands wrote and answered.
"""

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Where the section lives (the lead moves it into README.md).
SECTION_SOURCE = ROOT / "README.md"
HEADING = "## Bring your own model"
SERVERS = ("tierwise serve", "tierwise gateway")

pytestmark = pytest.mark.slow


def section(text: str) -> str:
    """The text from the section's heading up to the next ``## `` heading."""
    start = text.index(HEADING + "\n")
    end = text.find("\n## ", start + len(HEADING))
    return text[start : end if end != -1 else len(text)]


def commands(text: str) -> list[str]:
    """The command lines of the section's ``sh`` blocks, comments dropped."""
    out = []
    for body in re.findall(r"```sh\n(.*?)```", section(text), flags=re.S):
        for line in body.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                out.append(command)
    return out


COMMANDS = commands(SECTION_SOURCE.read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_free_ports(lines: list[str]) -> list[str]:
    """Each port a server line binds (``--port N``) moved to a free one, in every line."""
    ports = {p: str(_free_port()) for line in lines for p in re.findall(r"--port (\d+)", line)}
    out = []
    for line in lines:
        for old, new in ports.items():
            line = re.sub(rf"(--port |:){old}\b", rf"\g<1>{new}", line)
        out.append(line)
    return out


@dataclass
class Step:
    command: str
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    response: httpx.Response | None = None


@dataclass
class Walk:
    cwd: Path
    steps: dict[str, Step] = field(default_factory=dict)

    def step(self, prefix: str) -> Step:
        """The first step whose command (as written in the section) starts with ``prefix``."""
        found = next((s for c, s in self.steps.items() if c.startswith(prefix)), None)
        assert found is not None, f"the section runs no {prefix!r}"
        return found

    def ok(self, prefix: str) -> Step:
        """As :meth:`step`, skipping the check when that step failed (its test says why)."""
        found = self.step(prefix)
        if found.returncode != 0:
            pytest.skip(f"{prefix!r} failed; see its test_command_exits_0")
        return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def _start(args: list[str], cwd: Path, log: Path) -> tuple[subprocess.Popen[bytes], str | None]:
    """Start a server; None when it became ready, else why not."""
    port = args[args.index("--port") + 1]
    with log.open("wb") as out:
        server = subprocess.Popen(args, cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return server, f"exited with {server.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return server, None
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return server, "never became ready"


def _curl(line: str, cwd: Path) -> httpx.Response:
    args = shlex.split(line)
    url = "http://" + next(a for a in args if a.startswith("localhost:"))
    if "-d" in args:
        body = (cwd / args[args.index("-d") + 1].lstrip("@")).read_bytes()
        return httpx.post(url, content=body, timeout=30)
    return httpx.get(url, timeout=30)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    """Every command of the section, run in order; a failure is recorded, not raised, so
    that each command's test reports its own step."""
    cwd = tmp_path_factory.mktemp("byom")
    shutil.copytree(ROOT / "examples", cwd / "examples")
    result = Walk(cwd)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for written, line in zip(COMMANDS, _with_free_ports(COMMANDS), strict=True):
            step = result.steps[written] = Step(line)
            if line.startswith(SERVERS):
                log = cwd / f"server-{len(servers)}.log"
                server, failed = _start(shlex.split(line), cwd, log)
                servers.append(server)
                step.returncode = 0 if failed is None else 1
                step.stderr = f"{failed}\n{log.read_text()}" if failed else ""
            elif line.startswith("curl"):
                try:
                    step.response = _curl(line, cwd)
                except httpx.HTTPError as exc:
                    step.returncode, step.stderr = 1, repr(exc)
                else:
                    ok = step.response.status_code == 200
                    step.returncode, step.stderr = (0 if ok else 1), step.response.text
            else:
                done = subprocess.run(
                    line, shell=True, cwd=cwd, env=_env(), capture_output=True, text=True,
                    timeout=300, check=False,
                )  # fmt: skip
                step.returncode = done.returncode
                step.stdout, step.stderr = done.stdout, done.stderr
        yield result
    finally:
        for server in reversed(servers):
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=30)


def test_section_walks_every_verb() -> None:
    verbs = [
        "python examples/byom/export.py",
        "tierwise validate",
        "tierwise bench profile",
        "tierwise calibrate --model",
        "tierwise plan",
        "tierwise serve",
        "curl",
        "tierwise gateway",
        "tierwise keys generate",
        "tierwise bundle create",
        "tierwise registry push",
        "tierwise registry list",
    ]
    for verb in verbs:
        assert any(c.startswith(verb) for c in COMMANDS), verb
    serve = next(i for i, c in enumerate(COMMANDS) if c.startswith("tierwise serve"))
    gateway = next(i for i, c in enumerate(COMMANDS) if c.startswith("tierwise gateway"))
    assert any(c.startswith("curl") for c in COMMANDS[serve:gateway])
    assert any(c.startswith("curl") for c in COMMANDS[gateway:])


@pytest.mark.parametrize("command", COMMANDS, ids=[c[:60] for c in COMMANDS])
def test_command_exits_0(walk: Walk, command: str) -> None:
    step = walk.steps[command]
    assert step.returncode == 0, f"{step.command}\n{step.stderr}"


def _export_summary(walk: Walk) -> dict[str, Any]:
    step = walk.ok("python examples/byom/export.py")
    summary: dict[str, Any] = orjson.loads(step.stdout.strip().splitlines()[-1])
    return summary


def test_export_writes_a_model_repository_and_eval_rows(walk: Walk) -> None:
    import onnxruntime as ort

    accuracy = _export_summary(walk)["accuracy"]
    assert set(accuracy) == {"small", "large", "large-int8"}
    assert accuracy["large"] - accuracy["small"] >= 0.03  # the small one is visibly weaker
    for variant in accuracy:
        path = walk.cwd / "byom" / "models" / variant / "1" / "model.onnx"
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["diagnosis", "scores"]
        assert [i.name for i in session.get_inputs()] == ["features"]
    with np.load(walk.cwd / "byom" / "eval.npz") as data:
        assert sorted(data.files) == ["features", "labels"]
        assert data["features"].dtype == np.float32
        assert data["features"].shape == (data["labels"].shape[0], 30)


def test_profiles_time_the_eval_rows(walk: Walk) -> None:
    walk.ok("tierwise bench profile")
    doc = orjson.loads((walk.cwd / "byom" / "profiles.json").read_bytes())
    accuracy = _export_summary(walk)["accuracy"]
    profiles = {p["variant"]: p for p in doc["profiles"]}
    assert set(profiles) == set(accuracy)
    for variant, profile in profiles.items():
        assert [(i["name"], i["shape"], i["source"]) for i in profile["inputs"]] == [
            ("features", [30], "eval")
        ]
        assert profile["accuracy"] == pytest.approx(accuracy[variant], abs=1e-4)


def test_calibration_runs_the_cascade_on_the_users_files(walk: Walk) -> None:
    walk.ok("tierwise calibrate")
    doc = orjson.loads((walk.cwd / "byom" / "calibration.json").read_bytes())
    assert doc["variants"] == ["small", "large"]
    # right answers were read from the models' own outputs
    accuracy = _export_summary(walk)["accuracy"]
    for variant in ("small", "large"):
        assert doc["variant_accuracy"][variant] == pytest.approx(accuracy[variant], abs=1e-4)
    # the tensor each variant's scores were read from, found in its own outputs
    found = {"output": "scores", "scores": "probabilities"}
    assert doc["variant_outputs"] == {"small": found, "large": found}
    assert any(r.get("thresholds") for r in doc["rules"].values())


def test_plan_cascades_and_names_the_score_tensor(walk: Walk) -> None:
    walk.ok("tierwise plan")
    plan = yaml.safe_load((walk.cwd / "byom" / "plan.yaml").read_text())
    cascade = plan["workloads"]["screening"]["cascade"]
    tiers = [plan["tiers"][s["tier"]] for s in cascade]
    assert [(t["spec_tier"], t["variant"]) for t in tiers] == [
        ("analyzer", "small"),
        ("cloud", "large"),
    ]
    first = cascade[0]
    assert (first["output"], first["scores"]) == ("scores", "probabilities")
    assert all(s.get("output", "scores") == "scores" for s in cascade)
    assert plan["workloads"]["screening"]["expected"]["reach"][1] < 0.5


def _answer(step: Step) -> tuple[dict[str, Any], dict[str, Any]]:
    assert step.response is not None
    body: dict[str, Any] = step.response.json()
    return body, {o["name"]: o for o in body["outputs"]}


def test_server_answers_with_the_models_outputs(walk: Walk) -> None:
    body, outputs = _answer(walk.ok("curl -s localhost:8000/v2/models/small/infer"))
    assert body["model_name"] == "small"
    assert list(outputs) == ["scores", "diagnosis"]  # as request.json asks
    assert outputs["scores"]["shape"] == [1, 2]
    assert sum(outputs["scores"]["data"]) == pytest.approx(1.0, abs=1e-4)
    assert outputs["diagnosis"]["shape"] == [1]
    metadata = walk.steps["curl -s localhost:8000/v2/models/small"].response
    assert metadata is not None
    assert [o["name"] for o in metadata.json()["outputs"]] == ["diagnosis", "scores"]


def test_gateway_escalates_the_hard_sample_to_the_cloud(walk: Walk) -> None:
    body, outputs = _answer(walk.ok("curl -s localhost:8080/v2/models/screening/infer"))
    assert body["parameters"]["tier"] == "cloud"
    assert body["parameters"]["degraded"] is False
    assert outputs["diagnosis"]["data"] == [0]  # malignant, which small got wrong
    assert max(outputs["scores"]["data"]) > 0.99


def test_bundle_is_in_the_registry(walk: Walk) -> None:
    walk.ok("tierwise registry push")
    listed = subprocess.run(
        [sys.executable, "-m", "tierwise", "registry", "list", "--store", "byom/registry",
         "--json"],
        cwd=walk.cwd, env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (bundle,) = orjson.loads(listed.stdout)["bundles"]
    assert (bundle["name"], bundle["version"], bundle["tags"]) == ("breast-cancer", "1", ["stable"])
    assert bundle["variants"] == ["large", "large-int8", "small"]
