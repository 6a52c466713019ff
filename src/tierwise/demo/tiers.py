"""The plan's remote tiers brought up on loopback, and the plan pointed at them.

Every distinct endpoint of the plan becomes one ``tierwise serve`` process whose model
repository holds the variants the plan asks of it (and, for the comparison, the cloud's
large model). The plan is copied to a *live* plan whose URLs are those of the running
servers, with one more workload: the main workload sent to the cloud alone.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tierwise.errors import DemoError, TierError
from tierwise.http.client import HttpClient

__all__ = ["BASELINE_TIER", "Endpoints", "baseline_workload", "live_plan", "serve_endpoints"]

#: The live plan's tier that answers the cloud-only comparison.
BASELINE_TIER = "cloud-only"
_READY_TIMEOUT_S = 60.0
_START_ATTEMPTS = 3


def baseline_workload(workload: str) -> str:
    """The live plan's name for ``workload`` sent to the cloud alone."""
    return f"{workload}-cloud-only"


@dataclass(frozen=True)
class Endpoints:
    """What each endpoint of a plan serves: ``{url: (spec tier, [variants])}``."""

    served: dict[str, tuple[str, list[str]]]

    @staticmethod
    def of_plan(plan: Mapping[str, Any]) -> Endpoints:
        """From a plan document's remote tiers."""
        served: dict[str, tuple[str, list[str]]] = {}
        for name, tier in plan["tiers"].items():
            if "url" not in tier:
                continue
            spec_tier = str(tier.get("spec_tier", name))
            _, variants = served.setdefault(tier["url"], (spec_tier, []))
            if tier["model"] not in variants:
                variants.append(tier["model"])
        return Endpoints(served)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _repo(
    zoo_dir: Path, root: Path, variants: list[str], config: Mapping[str, Any] | None = None
) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for variant in variants:
        target = root / variant / "1"
        target.mkdir(parents=True)
        shutil.copyfile(zoo_dir / variant / "1" / "model.onnx", target / "model.onnx")
        if config:
            (root / variant / "config.yaml").write_text(yaml.safe_dump(dict(config)))
    return root


class _Server:
    """One ``tierwise serve`` process on loopback."""

    def __init__(self, repo: Path, port: int, log: Path) -> None:
        argv = [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
                "--port", str(port)]  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as out:
            # our own interpreter and arguments built here: nothing untrusted
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603

    def ready(self) -> bool:
        """True once it answers ready; False when it exited (its port was taken)."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        with HttpClient(self.url, timeout_s=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                with contextlib.suppress(TierError):
                    if client.request_sync("GET", "/v2/health/ready").status_code == 200:
                        return self.process.poll() is None
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start(repo: Path, log: Path, tier: str) -> _Server:
    """A ready server on a free port (another one when the port was taken meanwhile)."""
    for _ in range(_START_ATTEMPTS):
        server = _Server(repo, _free_port(), log)
        if server.ready():
            return server
        server.stop()
    raise DemoError(f"the {tier} tier server did not start; see {log}")


@contextlib.contextmanager
def serve_endpoints(
    endpoints: Endpoints,
    zoo_dir: Path,
    work_dir: Path,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[dict[str, str]]:
    """Start a tier server per endpoint, each on a free port; yields
    ``{planned url: live url}`` and stops the servers on exit. ``configs`` gives the
    models' ``config.yaml`` by spec tier."""
    servers: list[_Server] = []
    live: dict[str, str] = {}
    try:
        for url, (tier, variants) in endpoints.served.items():
            repo = _repo(zoo_dir, work_dir / "servers" / tier, variants, (configs or {}).get(tier))
            server = _start(repo, work_dir / f"{tier}.log", tier)
            servers.append(server)
            live[url] = server.url
        yield live
    finally:
        for server in servers:
            server.stop()


def live_plan(
    plan: Mapping[str, Any],
    urls: Mapping[str, str],
    path: Path,
    *,
    workload: str,
    baseline: Mapping[str, Any],
    tier_urls: Mapping[str, str] | None = None,
) -> Path:
    """Write ``plan`` with its URLs replaced by ``urls`` (planned -> live), or by
    ``tier_urls`` (tier -> URL, such as the tier's link) where that names the tier, plus the
    ``baseline`` tier and ``workload`` sent to it alone. ``path`` sits beside the plan, so
    relative paths keep their meaning."""
    doc = yaml.safe_load(yaml.safe_dump(dict(plan)))
    doc["tiers"][BASELINE_TIER] = dict(baseline)
    for name, tier in doc["tiers"].items():
        if "url" in tier:
            tier["url"] = (tier_urls or {}).get(name) or urls[tier["url"]]
    main = doc["workloads"][workload]
    doc["workloads"][baseline_workload(workload)] = {
        **{k: main[k] for k in ("privacy", "residency", "urgency", "deadline_ms") if k in main},
        "description": f"{workload}, every request to {baseline['spec_tier']} alone",
        "cascade": [{"tier": BASELINE_TIER}],
    }
    path.write_text(
        "# written by tierwise demo: the plan with the tier servers it started\n"
        + yaml.safe_dump(doc, sort_keys=False),
        encoding="utf-8",
    )
    return path
