"""A real Prometheus (``/usr/bin/prometheus``, Debian's package) for the tests: started on
a free loopback port with a throwaway storage folder, stopped afterwards."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from binaries import require_binary
from server_helpers import free_port

__all__ = ["running_prometheus", "static_config"]


def static_config(targets: Sequence[str], *, interval: str = "1s") -> dict[str, Any]:
    """A configuration scraping ``targets`` (``host:port``) every ``interval``."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "nodes", "scrape_timeout": interval,
                            "static_configs": [{"targets": list(targets)}]}],
    }  # fmt: skip


@contextmanager
def running_prometheus(
    config: Path | dict[str, Any], data: Path, *, port: int | None = None
) -> Iterator[str]:
    """Prometheus on ``config`` (a file, or a configuration to write beside ``data``)
    storing into ``data``; its URL once it answers ``/-/ready``."""
    binary = require_binary("prometheus")
    if isinstance(config, dict):
        path = data.parent / f"{data.name}.yml"
        path.write_text(yaml.safe_dump(config))
        config = path
    port = port or free_port()
    log_path = data.parent / f"{data.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus never became ready")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
