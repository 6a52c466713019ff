"""Labelled held-out data for calibrating a user's cascade (``tierwise calibrate --eval``).

Two forms, both named by the user's model inputs (nothing here knows any model):

- an ``.npz`` with one array per model input, named as the input and shaped
  ``[N, *sample]`` (a single-input model may use any one array name), plus ``labels``:
  integer class ids ``[N]`` (read by :class:`~tierwise.bench.evalset.EvalSet`, as
  ``tierwise bench profile --eval`` reads it);
- a folder of V2 inference request bodies (``*.json``, each ``{"inputs": [...]}`` as a
  client would POST it, one or more rows each) plus ``labels.txt`` (one integer per line,
  one per row, the files taken in sorted name order) or ``labels.json`` (that list, or a
  mapping of file name to a label or to a list of labels, one per row of the file).

Answers are scored against the labels; :meth:`EvalData.batches_for` matches the data to
each model's inputs (by name, datatype and shape) and splits it into calls. Every problem
is a ConfigError naming ``--eval``, the file and what was expected.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from tierwise.bench.evalset import LABEL_NAMES, EvalSet
from tierwise.errors import ConfigError, ProtocolError
from tierwise.protocol import datatype_of, decode_request
from tierwise.runtime import TensorSpec

__all__ = ["DEFAULT_BATCH_ROWS", "EvalData", "load_eval_data"]

#: Rows per call when the eval data is one array per input.
DEFAULT_BATCH_ROWS = 64


@dataclass(frozen=True)
class EvalData:
    """Held-out rows and their labels. ``arrays`` holds an ``.npz``'s input arrays (one
    call's worth per :data:`DEFAULT_BATCH_ROWS` rows); ``requests`` a folder's request
    inputs (one call each). ``source`` names the data in messages."""

    labels: np.ndarray
    source: str
    arrays: EvalSet | None = None
    requests: tuple[tuple[str, dict[str, np.ndarray]], ...] = ()

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])

    def batches_for(
        self, inputs: Sequence[TensorSpec], model: str, *, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> list[dict[str, np.ndarray]]:
        """The data as calls to ``model`` (whose inputs are ``inputs``); ConfigError naming
        the array and what the model takes when they do not match."""
        if self.arrays is not None:
            matched = self.arrays.match(inputs, model).inputs
            rows = batch_rows
            for spec in inputs:
                _check(matched[spec.name], spec, model, f"{self.source}: array", batched=True)
                if spec.shape and spec.shape[0] > 0:  # a fixed batch size
                    rows = spec.shape[0]
                    if self.rows % rows:
                        raise ConfigError(
                            f"--eval {self.source}",
                            f"a number of rows divisible by {rows}, the fixed batch of input"
                            f" {spec.name!r} of {model!r}",
                            self.rows,
                        )
            return [
                {name: a[start : start + rows] for name, a in matched.items()}
                for start in range(0, self.rows, rows)
            ]
        names = [spec.name for spec in inputs]
        out = []
        for file, given in self.requests:
            feeds = dict(given)
            if len(names) == 1 and len(feeds) == 1 and names[0] not in feeds:
                feeds = {names[0]: next(iter(feeds.values()))}
            if sorted(feeds) != sorted(names):
                raise ConfigError(
                    f"--eval {file}",
                    f"inputs named as those of {model!r} ({', '.join(names)})",
                    sorted(feeds),
                )
            for spec in inputs:
                _check(feeds[spec.name], spec, model, f"{file}: input", batched=False)
            out.append(feeds)
        return out


def _check(array: np.ndarray, spec: TensorSpec, model: str, where: str, *, batched: bool) -> None:
    """ConfigError unless ``array`` fits input ``spec``: its datatype, and its shape (for
    a ``batched`` array, ``[N, ...]`` whatever the model's first dimension)."""
    try:
        datatype = datatype_of(array, tensor=spec.name)
    except ProtocolError:
        datatype = str(array.dtype)
    shape = tuple(array.shape)
    fits = len(shape) == len(spec.shape) and all(
        want < 0 or want == got or (batched and i == 0)
        for i, (want, got) in enumerate(zip(spec.shape, shape, strict=True))
    )
    if datatype != spec.datatype or not fits:
        dims = ", ".join(
            "N" if batched and i == 0 else "?" if d < 0 else str(d)
            for i, d in enumerate(spec.shape)
        )
        raise ConfigError(
            f"--eval {where} {spec.name!r}",
            f"{spec.datatype} [{dims}] for input {spec.name!r} of {model!r}",
            f"{datatype} {list(shape)}",
        )


def _labels(values: object, where: str, count: int) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ConfigError(
            f"--eval {where}", "integer class ids, one per row ([N])",
            f"{labels.dtype} {list(labels.shape)}",
        )  # fmt: skip
    if labels.shape[0] != count:
        raise ConfigError(
            f"--eval {where}", f"{count} labels, one per row of the inputs", labels.shape[0]
        )
    if labels.size and int(labels.min()) < 0:
        raise ConfigError(f"--eval {where}", "class ids >= 0", int(labels.min()))
    return labels.astype(np.int64)


def _load_npz(path: Path) -> EvalData:
    from tierwise.zoo.files import read_npz

    try:
        arrays = read_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError("--eval", "a readable .npz file or a folder", f"{path}: {exc}") from exc
    label = next((n for n in LABEL_NAMES if n in arrays), None)
    if label is None:
        raise ConfigError(
            f"--eval {path}",
            "an array 'labels' (integer class ids [N]) beside the inputs",
            sorted(arrays),
        )
    inputs = {n: a for n, a in arrays.items() if n != label}
    counts = {a.shape[0] if a.ndim else 0 for a in inputs.values()}
    if len(counts) != 1:
        shapes = {n: list(a.shape) for n, a in inputs.items()}
        raise ConfigError(f"--eval {path}", "input arrays with the same N rows first", shapes)
    labels = _labels(arrays[label], f"{path}: {label}", counts.pop())
    return EvalData(labels, str(path), arrays=EvalSet({**inputs, label: labels}, str(path)))


def _folder_labels(folder: Path, files: Sequence[Path], rows: Sequence[int]) -> np.ndarray:
    txt, js = folder / "labels.txt", folder / "labels.json"
    total = sum(rows)
    if txt.is_file():
        lines = [ln.strip() for ln in txt.read_text(encoding="utf-8").splitlines()]
        try:
            values = [int(ln) for ln in lines if ln]
        except ValueError as exc:
            raise ConfigError(f"--eval {txt}", "one integer label per line", str(exc)) from exc
        return _labels(np.asarray(values, dtype=np.int64), str(txt), total)
    if not js.is_file():
        raise ConfigError(f"--eval {folder}", "labels.txt or labels.json beside the request files")
    try:
        doc = orjson.loads(js.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--eval {js}", "JSON: a list of labels or a mapping", str(exc)) from exc
    if isinstance(doc, dict):
        missing = [f.name for f in files if f.name not in doc]
        if missing:
            raise ConfigError(f"--eval {js}", "a label for every request file", missing[:5])
        listed: list[object] = []
        for file, n in zip(files, rows, strict=True):
            entry = doc[file.name]
            entry = entry if isinstance(entry, list) else [entry]
            if len(entry) != n:
                raise ConfigError(f"--eval {js}: {file.name!r}", f"{n} labels", len(entry))
            listed.extend(entry)
        doc = listed
    if not isinstance(doc, list) or not all(type(v) is int for v in doc):
        raise ConfigError(f"--eval {js}", "integer labels: a list, or file name -> label(s)")
    return _labels(np.asarray(doc, dtype=np.int64), str(js), total)


def _load_folder(folder: Path) -> EvalData:
    files = sorted(p for p in folder.glob("*.json") if p.name != "labels.json")
    if not files:
        raise ConfigError(f"--eval {folder}", "V2 request files (*.json) in the folder")
    requests = []
    rows = []
    for file in files:
        try:
            request = decode_request(file.read_bytes())
        except ProtocolError as exc:
            raise ConfigError(f"--eval {file}", "a V2 inference request body", str(exc)) from exc
        counts = {a.shape[0] if a.ndim else 1 for a in request.inputs.values()}
        if not request.inputs or len(counts) != 1:
            shapes = {n: list(a.shape) for n, a in request.inputs.items()}
            raise ConfigError(f"--eval {file}", "inputs with the same rows first", shapes)
        requests.append((str(file), dict(request.inputs)))
        rows.append(counts.pop())
    labels = _folder_labels(folder, files, rows)
    return EvalData(labels, str(folder), requests=tuple(requests))


def load_eval_data(path: str | Path) -> EvalData:
    """The labelled eval data at ``path``: an ``.npz`` file or a folder (module docs)."""
    where = Path(path)
    if where.is_dir():
        return _load_folder(where)
    if not where.is_file():
        raise ConfigError("--eval", "an .npz file or a folder of V2 request files", str(where))
    return _load_npz(where)
