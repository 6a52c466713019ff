"""Run a real tier server on loopback: in a background thread (uvicorn), or as a
`tierwise serve` process."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tierwise.server import ServerSettings, create_app
from tierwise.server.app import TierServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningServer:
    def __init__(self, app: TierServer, server: uvicorn.Server, port: int) -> None:
        self.app = app
        self.server = server
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.host_port = f"127.0.0.1:{port}"


@contextmanager
def running_app(app: Any, port: int | None = None) -> Iterator[tuple[uvicorn.Server, int]]:
    """Any ASGI app on uvicorn in a background thread, on loopback."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="asyncio", http="httptools",
        lifespan="on", access_log=False, log_config=None, timeout_graceful_shutdown=10,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield server, port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_server(
    settings: ServerSettings, port: int | None = None, **app_options: Any
) -> Iterator[RunningServer]:
    """A tier server for ``settings`` (on ``port``, or a free one)."""
    port = port or free_port()
    settings = settings.model_copy(update={"port": port, "access_log": False})
    app = create_app(settings, **app_options)
    with running_app(app, port) as (server, _):
        yield RunningServer(app, server, port)


class ServerProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def server_process(
    repo: Path, *extra: str, ready_timeout_s: float = 60, ready_path: str = "/v2/health/ready"
) -> Iterator[ServerProcess]:
    """``tierwise serve`` in its own process (its own GIL and core), stopped with SIGTERM."""
    port = free_port()
    log_path = repo.parent / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
             "--port", str(port), *extra],
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = ServerProcess(process, port, log_path)
    deadline = time.monotonic() + ready_timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tierwise serve exited early:\n{running.log()}")
            try:
                if httpx.get(running.url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tierwise serve never became ready:\n{running.log()}")
            time.sleep(0.05)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def captured_logs(name: str = "tierwise.server") -> Iterator[list[str]]:
    """The messages logged at INFO and above on logger ``name`` (from any thread) while
    the block runs."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger(name)
    handler = Collect(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
