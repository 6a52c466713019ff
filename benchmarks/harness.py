"""Shared pieces of the benchmarks: free ports, server processes, wrk runs, RSS readings."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson

__all__ = [
    "LinkProxy",
    "WrkResult",
    "digits_request",
    "free_port",
    "pinning",
    "require_wrk",
    "rss_mib",
    "run_wrk",
    "server",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinning() -> tuple[list[str], list[str]]:
    """The command prefixes that put wrk on CPU 0 and the servers on the rest (none on a
    one-CPU machine or without taskset)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    taskset = shutil.which("taskset")
    if len(cpus) < 2 or taskset is None:
        return [], []
    rest = ",".join(str(c) for c in cpus[1:])
    return [taskset, "-c", str(cpus[0])], [taskset, "-c", rest]


def digits_request() -> bytes:
    """One batch-1 V2 JSON request for the zoo's models (a seeded 8x8 image)."""
    data = np.random.default_rng(0).random(64).round(4).tolist()
    doc = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": data}]}
    return orjson.dumps(doc)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.stderr.write(
            "this benchmark drives load with wrk: scripts/system-deps.sh bench "
            "(or apt-get install wrk)\n"
        )
        raise SystemExit(2)
    return path


@contextmanager
def server(
    argv: Sequence[str], ready_url: str, *, log: Path, timeout_s: float = 120
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until ``ready_url`` answers 200, stop it with SIGTERM."""
    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited early; see {log}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} never became ready; see {log}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class WrkResult:
    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def run_wrk(
    url: str,
    body: bytes,
    *,
    connections: int,
    duration_s: float,
    headers: dict[str, str],
    pin: Sequence[str] = (),
) -> WrkResult:
    """POST ``body`` to ``url`` from ``connections`` connections for ``duration_s``;
    ``pin`` prefixes the command (``taskset -c 0``: wrk on its own CPU)."""
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"{header_lines}\n"
            f'local f = io.open("{body_file}", "rb")\n'
            'wrk.body = f:read("*a")\nf:close()\n'
        )
        result = subprocess.run(
            [*pin, wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
             "-s", str(script), url],
            capture_output=True, text=True, check=True,
            env={**os.environ, "LC_ALL": "C"},
        )  # fmt: skip
    text = result.stdout
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return WrkResult(connections, duration_s, requests, rate, p50, p99, errors)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


class LinkProxy:
    """A loopback TCP proxy to ``target_port`` that paces answers to ``mb_per_s`` per
    connection: a network link of that speed between a client and a local server."""

    def __init__(self, target_port: int, mb_per_s: float) -> None:
        self.target_port = target_port
        self.bytes_per_s = mb_per_s * 1e6
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self.bytes_per_s), daemon=True
            ).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, rate: float | None) -> None:
        started = time.perf_counter()
        sent = 0
        try:
            while data := src.recv(256 * 1024):
                dst.sendall(data)
                sent += len(data)
                if rate:
                    ahead = sent / rate - (time.perf_counter() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                    elif ahead < -0.05:  # idle between requests: restart the clock
                        started, sent = time.perf_counter(), 0
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.listener.close()
