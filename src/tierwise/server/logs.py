"""Log set-up for ``tierwise serve``: plain lines or JSON lines on stderr."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import IO

import orjson

__all__ = ["AccessLog", "JsonLineFormatter", "configure_logging"]


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def configure_logging(level: str = "info", *, json_lines: bool = False) -> None:
    """Route tierwise's and uvicorn's loggers to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    for name in ("tierwise", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


class AccessLog:
    """Buffered access log: one line per request, written in blocks.

    ``logging`` with a stream handler writes and flushes every record, which halves a
    fast server's throughput; this keeps lines in memory and writes them every
    ``flush_interval_s`` or when ``max_buffer_bytes`` is reached (and at shutdown).
    """

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        json_lines: bool = False,
        flush_interval_s: float = 0.25,
        max_buffer_bytes: int = 64 * 1024,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr.buffer
        self._json = json_lines
        self._buffer: list[bytes] = []
        self._size = 0
        self._max = max_buffer_bytes
        self._interval_s = flush_interval_s
        self._second = -1
        self._stamp = ""

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def record(
        self, client: str, method: str, path: str, status: int, size: int, duration_ms: float
    ) -> None:
        now = time.time()
        if self._json:
            line = (
                orjson.dumps(
                    {
                        "ts": round(now, 3),
                        "client": client,
                        "method": method,
                        "path": path,
                        "status": status,
                        "bytes": size,
                        "duration_ms": round(duration_ms, 3),
                    }
                )
                + b"\n"
            )
        else:
            line = (
                f'{self._timestamp(now)} {client} "{method} {path}" {status} {size} '
                f"{duration_ms:.3f}ms\n"
            ).encode()
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= self._max:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log must not take the server down

    async def run(self) -> None:
        """Flush periodically until cancelled; flushes once more on the way out."""
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                self.flush()
        finally:
            self.flush()
