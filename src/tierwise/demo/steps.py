"""Which steps of the demo can be skipped: each step is keyed by its inputs.

A step's key is a SHA-256 over its settings (JSON, sorted keys) and the content of its
input files. :class:`StepCache` records each finished step's key and output files in one
JSON file; the next run skips a step when its key is the same and its outputs are still
there and unchanged. Changing a setting, a price or an input file (a rebuilt model, new
profiles) re-runs that step and, through the outputs it rewrites, every step after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from tierwise.errors import ConfigError

__all__ = ["StepCache", "file_digest", "step_key"]

_CHUNK_BYTES = 1 << 20


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def step_key(settings: Mapping[str, Any], files: Iterable[Path] = ()) -> str:
    """The key of a step: its settings and the content of its input files (a missing file
    counts as absent, so creating it changes the key)."""
    digest = hashlib.sha256(orjson.dumps(dict(settings), option=orjson.OPT_SORT_KEYS))
    for path in files:
        digest.update(str(path).encode())
        digest.update(file_digest(path).encode() if path.is_file() else b"-")
    return digest.hexdigest()


class StepCache:
    """Finished steps, their keys and outputs, kept in ``path`` (JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._steps: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                loaded = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError:
                loaded = {}
            if isinstance(loaded, dict):
                self._steps = {k: v for k, v in loaded.items() if isinstance(v, dict)}

    def is_current(self, step: str, key: str) -> bool:
        """Whether ``step`` finished with ``key`` and its outputs are as it left them."""
        entry = self._steps.get(step)
        if entry is None or entry.get("key") != key:
            return False
        outputs = entry.get("outputs", {})
        if not isinstance(outputs, dict):
            return False
        return all(
            Path(name).is_file() and file_digest(Path(name)) == digest
            for name, digest in outputs.items()
        )

    def record(self, step: str, key: str, outputs: Iterable[Path]) -> None:
        """Remember that ``step`` finished with ``key`` and wrote ``outputs``."""
        files = list(outputs)
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise ConfigError("outputs", "files the step wrote", missing)
        self._steps[step] = {"key": key, "outputs": {str(p): file_digest(p) for p in files}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(
            orjson.dumps(self._steps, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        )

    def forget(self, step: str) -> None:
        """Drop ``step`` so the next run does it again."""
        self._steps.pop(step, None)
