"""``tierwise bundle create``: a bundle directory from a model repository or ONNX files.

A bundle directory holds ``manifest.json`` (canonical bytes, unsigned) and
``blobs/sha256/<hex>``, one file per distinct model or drift reference. It is signed when
pushed. A model with a drift reference beside it (``reference.json`` in the folder of its
``model.onnx``, as the zoo writes and ``tierwise drift reference`` makes) carries it: the
reference is checked against the model's signature, stored as a blob and named in the
variant's entry, so it is hashed and signed like the model and lands beside it on a node.
Variants come from each model folder of a repository (``DIR/<model>/<version>/
model.onnx``, its highest version; accuracy and quantization from the zoo's
``zoo.json`` when there is one) or from each ``.onnx`` file named (variant = file stem).

A bundle is one model: its variants (an fp32 and an int8 build, a build per accelerator)
are interchangeable, so they must share one signature, the inputs and outputs the
manifest records. Different models, such as a detector and a tracker or a classifier on
the same edge box, are different bundles: each is versioned, signed, pulled and rolled
back on its own, and an edge node syncs as many as it serves (``bundles:`` in the
agent's settings, :mod:`tierwise.agent.settings`).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import orjson

from tierwise.errors import BundleError, ConfigError, TierwiseError
from tierwise.registry.digest import atomic_write_bytes, check_digest, digest_file
from tierwise.registry.manifest import (
    REFERENCE_FILE,
    BlobRef,
    BundleManifest,
    TensorSig,
    VariantEntry,
    check_name,
    check_version,
    parse_manifest,
)
from tierwise.runtime.onnx import read_signature
from tierwise.telemetry.drift_reference import Reference

__all__ = ["BundleDir", "create_bundle", "detect_quantization", "read_bundle_dir"]

MANIFEST_FILE = "manifest.json"
_QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "QLinearMatMul",
    "QLinearConv",
}


def blob_path(root: Path, digest: str) -> Path:
    """Where a content-addressed blob lives under ``root``."""
    return root / "blobs" / "sha256" / check_digest(digest)[7:]


def detect_quantization(path: Path) -> str:
    """``int8`` when the graph holds quantized operators, else ``fp32``."""
    return _quantization(onnx.load(str(path), load_external_data=False))


def _quantization(model: onnx.ModelProto) -> str:
    ops = {node.op_type for node in model.graph.node}
    return "int8" if ops & _QUANT_OPS else "fp32"


def _inspect(path: Path) -> str:
    """The model's quantization; BundleError when it is not an ONNX model or its weights
    are in external files."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError for bytes that are no model, OSError
        raise BundleError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from exc
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise BundleError(
            f"{path}: its weights live in external data files; save the model as one file "
            "(onnx.save(model, path, save_as_external_data=False)) to bundle it"
        )
    return _quantization(model)


@dataclass(frozen=True)
class _Source:
    variant: str
    path: Path
    accuracy: float | None
    quantization: str | None


def _zoo_facts(folder: Path) -> dict[str, dict[str, Any]]:
    index = folder / "zoo.json"
    if not index.is_file():
        return {}
    try:
        data = orjson.loads(index.read_bytes())
        return {str(v["name"]): v for v in data.get("variants", [])}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"{index}: not a zoo index: {exc}") from exc


def _store_blob(source: Path, out: Path) -> tuple[str, int]:
    digest, size = digest_file(source)
    target = blob_path(out, digest)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return digest, size


def _reference(model: Path, signature: Mapping[str, Any], out: Path) -> BlobRef | None:
    """The drift reference beside ``model`` (checked, and stored as a blob), if any."""
    path = model.parent / REFERENCE_FILE
    if model.name != "model.onnx" or not path.is_file():
        return None
    try:
        reference = Reference.load(path)
    except ConfigError as exc:
        raise BundleError(f"{path}: not a valid drift reference: {exc}") from exc
    inputs = [t["name"] for t in signature["inputs"]]
    outputs = [t["name"] for t in signature["outputs"]]
    if reference.input_name not in inputs or reference.output not in (None, *outputs):
        raise BundleError(
            f"{path}: the reference reads input {reference.input_name!r} and output "
            f"{reference.output!r}; the model has inputs {inputs} and outputs {outputs}"
        )
    digest, size = _store_blob(path, out)
    return BlobRef(digest=digest, size_bytes=size)


def _variant_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._") or "model"
    return check_name(name, what=f"variant name from {stem!r}")


def _sources(paths: Sequence[Path]) -> list[_Source]:
    found: list[_Source] = []
    for path in paths:
        if path.is_file():
            if path.suffix != ".onnx":
                raise BundleError(f"{path}: expected an .onnx file or a model repository folder")
            found.append(_Source(_variant_name(path.stem), path, None, None))
        elif path.is_dir():
            facts = _zoo_facts(path)
            for folder in sorted(p for p in path.iterdir() if p.is_dir()):
                versions = [
                    int(v.name)
                    for v in folder.iterdir()
                    if v.name.isdigit() and (v / "model.onnx").is_file()
                ]
                if not versions:
                    continue
                fact = facts.get(folder.name, {})
                accuracy = fact.get("accuracy")
                found.append(
                    _Source(
                        _variant_name(folder.name),
                        folder / str(max(versions)) / "model.onnx",
                        float(accuracy) if accuracy is not None else None,
                        fact.get("quantization"),
                    )
                )
        else:
            raise BundleError(f"{path}: no such file or folder")
    if not found:
        raise BundleError(
            "no models found: expected .onnx files or a repository DIR/<model>/<version>/model.onnx"
        )
    names = [s.variant for s in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BundleError(f"two sources give the variant name(s) {', '.join(dupes)}")
    return found


def create_bundle(
    sources: Sequence[Path],
    out: Path,
    *,
    name: str,
    version: str,
    task: str = "classification",
    description: str = "",
    tags: Mapping[str, str] | None = None,
    variant_tags: Mapping[str, Mapping[str, str]] | None = None,
    parent_version: str | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> BundleManifest:
    """Write a bundle directory at ``out`` and return its manifest. ``tags`` apply to every
    variant, ``variant_tags`` to one; a ``quant`` tag sets the variant's quantization."""
    check_name(name)
    check_version(version)
    if parent_version is not None:
        check_version(parent_version)
    found = _sources(sources)
    signature = None
    entries: list[VariantEntry] = []
    out.mkdir(parents=True, exist_ok=True)
    for source in found:
        detected = _inspect(source.path)
        try:
            sig = read_signature(source.path).to_dict()
        except TierwiseError as exc:
            raise BundleError(f"{source.path}: not a loadable ONNX model: {exc}") from exc
        if signature is None:
            signature = sig
        elif sig != signature:
            raise BundleError(
                f"variant {source.variant!r} has the signature {sig}, the others have "
                f"{signature}; a bundle's variants must share inputs and outputs (a bundle "
                "is one model): put a different model in a bundle of its own, and list "
                "each bundle under `bundles:` in the edge node's agent.yaml"
            )
        own = dict(tags or {}) | dict((variant_tags or {}).get(source.variant, {}))
        quantization = own.get("quant") or source.quantization or detected
        digest, size = _store_blob(source.path, out)
        reference = _reference(source.path, sig, out)
        try:
            entries.append(
                VariantEntry(
                    name=source.variant,
                    path=f"{source.variant}/model.onnx",
                    quantization=quantization,
                    tags=own,
                    digest=digest,
                    size_bytes=size,
                    accuracy=source.accuracy,
                    reference=reference,
                )
            )
        except ValueError as exc:
            raise BundleError(f"variant {source.variant!r}: {exc}") from exc
    unknown = set(variant_tags or {}) - {s.variant for s in found}
    if unknown:
        raise BundleError(f"--variant-tag names unknown variant(s): {', '.join(sorted(unknown))}")
    assert signature is not None  # _sources found at least one model
    manifest = BundleManifest(
        name=name,
        version=version,
        task=task,
        description=description,
        inputs=[TensorSig.model_validate(t) for t in signature["inputs"]],
        outputs=[TensorSig.model_validate(t) for t in signature["outputs"]],
        variants=entries,
        created_at=now().isoformat(timespec="seconds"),
        parent_version=parent_version,
    )
    atomic_write_bytes(out / MANIFEST_FILE, manifest.canonical_bytes())
    return manifest


@dataclass(frozen=True)
class BundleDir:
    """A bundle directory read back: manifest bytes and where each blob is."""

    root: Path
    manifest: BundleManifest
    manifest_bytes: bytes

    def blob(self, digest: str) -> Path:
        return blob_path(self.root, digest)


def read_bundle_dir(root: Path) -> BundleDir:
    """Read and check a bundle directory: manifest valid, every blob present with the
    size and digest the manifest gives."""
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise BundleError(f"{root}: no {MANIFEST_FILE}; expected a folder made by `bundle create`")
    data = path.read_bytes()
    manifest = parse_manifest(data)
    for variant in manifest.variants:
        for expected, expected_size in variant.blobs():
            blob = blob_path(root, expected)
            if not blob.is_file():
                raise BundleError(f"{root}: blob {expected} of variant {variant.name} is missing")
            digest, size = digest_file(blob)
            if (digest, size) != (expected, expected_size):
                raise BundleError(
                    f"{root}: blob {expected} of variant {variant.name} is {size} bytes with "
                    f"digest {digest}; the manifest gives {expected_size} bytes and {expected}"
                )
    return BundleDir(root, manifest, data)
