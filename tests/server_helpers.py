"""Run a real tier server on loopback: in a background thread (uvicorn), or as a
`tierwise serve` process; over HTTPS when its settings name TLS files."""

from __future__ import annotations

import logging
import signal
import socket
import ssl
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
    def __init__(
        self, app: TierServer, server: uvicorn.Server, port: int, scheme: str = "http"
    ) -> None:
        self.app = app
        self.server = server
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.host_port = f"127.0.0.1:{port}"


@contextmanager
def running_app(
    app: Any, port: int | None = None, **config_options: Any
) -> Iterator[tuple[uvicorn.Server, int]]:
    """Any ASGI app on uvicorn in a background thread, on loopback; ``config_options``
    go to ``uvicorn.Config`` (``ssl_certfile`` and friends)."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="asyncio", http="httptools",
        lifespan="on", access_log=False, log_config=None, timeout_graceful_shutdown=10,
        **config_options,
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
    """A tier server for ``settings`` (on ``port``, or a free one); HTTPS when
    ``settings.tls`` is set."""
    port = port or free_port()
    settings = settings.model_copy(update={"port": port, "access_log": False})
    app = create_app(settings, **app_options)
    tls = {} if settings.tls is None else settings.tls.uvicorn_options()
    with running_app(app, port, **tls) as (server, _):
        yield RunningServer(app, server, port, "https" if tls else "http")


class ServerProcess:
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log_path: Path, scheme: str = "http"
    ) -> None:
        self.process = process
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def server_process(
    repo: Path,
    *extra: str,
    ready_timeout_s: float = 60,
    ready_path: str = "/v2/health/ready",
    verify: ssl.SSLContext | None = None,
) -> Iterator[ServerProcess]:
    """``tierwise serve`` in its own process (its own GIL and core), stopped with SIGTERM;
    over HTTPS, checked with ``verify``, when that is given."""
    port = free_port()
    log_path = repo.parent / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
             "--port", str(port), *extra],
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = ServerProcess(process, port, log_path, "http" if verify is None else "https")
    deadline = time.monotonic() + ready_timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tierwise serve exited early:\n{running.log()}")
            try:
                answer = httpx.get(running.url + ready_path, timeout=1, verify=verify or True)
                if answer.status_code == 200:
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
