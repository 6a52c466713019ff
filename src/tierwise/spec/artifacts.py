"""Checks on the files a spec's variants name, run by ``tierwise validate``.

A variant's ``uri`` is a URI (``zoo://NAME``, ``oci://...``: not checked here, they are
resolved by the verbs that use them) or a plain path, relative to the spec's folder. For a
plain path:

- missing: a *warning*. Specs often describe a fleet before its artifacts are built (the
  shipped scenarios do), so a missing file does not make the spec invalid;
  ``tierwise validate --strict`` makes it an error.
- an empty file, or, for runtime ``onnxruntime`` (and ``onnxruntime-web``...), a folder or
  a file that does not start like an ONNX model: an *error*; something is there and
  cannot be what the variant says.

Only the first bytes of a file are read: a model is never loaded here. :func:`load_spec`
does not run these checks, so planning from a spec does not depend on its files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tierwise.spec.fleet import FleetSpec
from tierwise.spec.messages import Loc

__all__ = ["ArtifactFinding", "artifact_findings", "looks_like_onnx"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ONNX_RUNTIME = "onnxruntime"  # and its flavours: onnxruntime-web, onnxruntime-gpu...
_HEAD_BYTES = 16
#: ModelProto's fields (onnx.proto3) by number, with the wire type each is written with:
#: 0 = varint (ir_version, model_version), 2 = length-delimited (strings, messages).
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_ORT_FORMAT_ID = b"ORTM"  # onnxruntime's own flatbuffer format (.ort), bytes 4..8

#: ``(field path, message, is_error)``
ArtifactFinding = tuple[Loc, str, bool]


def looks_like_onnx(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) can start an ONNX model: a serialized
    ModelProto opens with the tag of one of its fields (``ir_version`` in practice), an
    onnxruntime ``.ort`` file with its flatbuffer identifier."""
    if head[4:8] == _ORT_FORMAT_ID:
        return True
    tag = 0
    for i, byte in enumerate(head[:5]):
        tag |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            break
    else:
        return False
    return _MODEL_FIELDS.get(tag >> 3) == tag & 0x7


def _check_file(uri: str, path: Path, runtime: str) -> tuple[str, bool] | None:
    """What is wrong with the file ``uri`` resolves to, and whether it is an error; None
    when nothing is."""
    where = f"{uri!r} resolves to"
    onnx = runtime == _ONNX_RUNTIME or runtime.startswith(f"{_ONNX_RUNTIME}-")
    if not path.exists():
        return (
            f"no such file: {where} {path} (paths are relative to the spec's folder);"
            " expected the variant's model file there, or a URI (zoo://NAME, oci://...)"
        ), False
    if path.is_dir():
        if not onnx:
            return None  # other runtimes may load a folder (a SavedModel, an engine plan)
        return f"{where} the folder {path}; expected an ONNX model file", True
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        return f"cannot read {path} ({uri!r}): {exc.strerror or exc}", True
    if not head:
        return f"{where} an empty file {path}; expected a model file", True
    if onnx and not looks_like_onnx(head):
        return (
            f"{where} {path}, which does not start like an ONNX model; expected an ONNX"
            f" file for runtime {runtime!r}"
        ), True
    return None


def artifact_findings(spec: FleetSpec, spec_file: str | os.PathLike[str]) -> list[ArtifactFinding]:
    """Every variant whose plain-path ``uri`` (relative to the folder of ``spec_file``) is
    missing, a folder, empty or not ONNX; see the module docs for which are errors."""
    folder = Path(os.fspath(spec_file)).parent
    out: list[ArtifactFinding] = []
    for model in spec.models.values():
        for variant in model.variants.values():
            if _SCHEME.match(variant.uri):
                continue
            resolved = Path(os.path.abspath(folder / variant.uri))
            found = _check_file(variant.uri, resolved, variant.runtime)
            if found is not None:
                loc: Loc = ("models", model.name, "variants", variant.name, "uri")
                out.append((loc, *found))
    return out
