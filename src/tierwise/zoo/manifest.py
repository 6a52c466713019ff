"""``zoo.json``: what a built zoo holds, read back and validated.

A zoo directory is a model repository (``<model>/1/model.onnx`` per variant) plus
``eval.npz`` (the held-out split) and ``zoo.json``, written last, which lists every
variant with its accuracy, size, sha256 and signature. :func:`load_zoo` turns a missing or
malformed manifest into a :class:`~tierwise.errors.ZooError` that says what is wrong.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from tierwise.errors import ZooError
from tierwise.runtime import Signature
from tierwise.zoo.data import IMAGE_SHAPE
from tierwise.zoo.files import read_npz, sha256_of

__all__ = [
    "BUILDER_VERSION",
    "EVAL_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "Zoo",
    "ZooVariant",
    "load_eval",
    "load_zoo",
    "zoo_is_current",
]

#: Bump whenever recipes, corruptions or export change what a seed builds.
BUILDER_VERSION = "2"
MANIFEST_FILE = "zoo.json"
EVAL_FILE = "eval.npz"
FORMAT_VERSION = 1

Tier = Literal["device", "edge", "cloud"]
Quantization = Literal["fp32", "int8"]


@dataclass(frozen=True)
class ZooVariant:
    """One model file of the family. ``path`` is relative to the zoo directory;
    ``parent`` names the fp32 model an int8 variant was quantized from."""

    name: str
    parent: str | None
    tier: Tier
    quantization: Quantization
    accuracy: float  # on the held-out split, in [0, 1]
    size_bytes: int
    sha256: str
    path: str
    signature: Signature
    reference: str | None = None  # the drift reference beside the model, when it has one
    reference_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.reference is not None:
            extra["reference"] = {"path": self.reference, "sha256": self.reference_sha256}
        return extra | {
            "name": self.name,
            "parent": self.parent,
            "tier": self.tier,
            "quantization": self.quantization,
            "accuracy": self.accuracy,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "path": self.path,
            "signature": self.signature.to_dict(),
        }


@dataclass(frozen=True)
class Zoo:
    """A built model family: where it lives, how it was built, and its variants."""

    root: Path
    seed: int
    builder_version: str
    task: str
    eval_samples: int
    eval_sha256: str
    variants: tuple[ZooVariant, ...]

    def variant(self, name: str) -> ZooVariant:
        """The variant called ``name``; ZooError listing the known ones otherwise."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        known = ", ".join(v.name for v in self.variants)
        raise ZooError(f"the zoo in {self.root} has no variant {name!r}; it has {known}")

    def model_path(self, name: str) -> Path:
        """Absolute path of a variant's ONNX file."""
        return self.root / self.variant(name).path

    def reference_path(self, name: str) -> Path | None:
        """Absolute path of a variant's drift reference (None for a zoo built without)."""
        reference = self.variant(name).reference
        return None if reference is None else self.root / reference

    @property
    def eval_path(self) -> Path:
        return self.root / EVAL_FILE

    def to_dict(self) -> dict[str, Any]:
        """The ``zoo.json`` document (``root`` is where it lies, so it is not stored)."""
        return {
            "format": FORMAT_VERSION,
            "builder_version": self.builder_version,
            "seed": self.seed,
            "task": self.task,
            "eval": {"path": EVAL_FILE, "samples": self.eval_samples, "sha256": self.eval_sha256},
            "variants": [v.to_dict() for v in self.variants],
        }

    def to_json(self) -> bytes:
        """Stable bytes: sorted keys, two-space indent, trailing newline."""
        return (
            orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
        )


# -- validation schema of zoo.json ---------------------------------------------------------

_SHA256 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _TensorEntry(_Strict):
    name: str = Field(min_length=1)
    datatype: str = Field(min_length=1)
    shape: list[int]


class _SignatureEntry(_Strict):
    inputs: list[_TensorEntry] = Field(min_length=1)
    outputs: list[_TensorEntry] = Field(min_length=1)


def _inside_zoo(value: str) -> str:
    pure = PurePosixPath(value)
    if not value or pure.is_absolute() or ".." in pure.parts or "\\" in value:
        raise ValueError("must be a relative path inside the zoo directory")
    return value


_ZooPath = Annotated[str, AfterValidator(_inside_zoo)]


class _FileEntry(_Strict):
    path: _ZooPath
    sha256: str = Field(pattern=_SHA256)


class _VariantEntry(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    parent: str | None
    tier: Tier
    quantization: Quantization
    accuracy: float = Field(ge=0.0, le=1.0)
    size_bytes: int = Field(ge=1)
    sha256: str = Field(pattern=_SHA256)
    path: _ZooPath
    signature: _SignatureEntry
    reference: _FileEntry | None = None


class _EvalEntry(_Strict):
    path: Literal["eval.npz"]
    samples: int = Field(ge=1)
    sha256: str = Field(pattern=_SHA256)


class _ManifestEntry(_Strict):
    format: Literal[1]
    builder_version: str = Field(min_length=1)
    seed: int = Field(ge=0)
    task: str
    eval: _EvalEntry
    variants: list[_VariantEntry] = Field(min_length=1)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "<root>"
        problems.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _from_entry(root: Path, entry: _ManifestEntry) -> Zoo:
    manifest = root / MANIFEST_FILE
    variants = []
    names: set[str] = set()
    for item in entry.variants:
        if item.name in names:
            raise ZooError(f"{manifest}: variant {item.name!r} is listed twice")
        names.add(item.name)
        variants.append(
            ZooVariant(
                name=item.name,
                parent=item.parent,
                tier=item.tier,
                quantization=item.quantization,
                accuracy=item.accuracy,
                size_bytes=item.size_bytes,
                sha256=item.sha256,
                path=item.path,
                signature=Signature.from_dict(item.signature.model_dump()),
                reference=None if item.reference is None else item.reference.path,
                reference_sha256=None if item.reference is None else item.reference.sha256,
            )
        )
    for variant in variants:
        if variant.parent is not None and variant.parent not in names:
            raise ZooError(
                f"{manifest}: variant {variant.name!r} names parent {variant.parent!r}, "
                "which is not in the zoo"
            )
    return Zoo(
        root=root,
        seed=entry.seed,
        builder_version=entry.builder_version,
        task=entry.task,
        eval_samples=entry.eval.samples,
        eval_sha256=entry.eval.sha256,
        variants=tuple(variants),
    )


def load_zoo(directory: str | Path, *, verify: bool = False) -> Zoo:
    """Read and validate ``directory/zoo.json``; every listed file must exist.

    With ``verify`` the sha256 of every file is checked too. Raises ZooError naming the
    file and the problem (missing, not JSON, a field out of shape, a file missing or
    changed).
    """
    root = Path(directory)
    manifest = root / MANIFEST_FILE
    try:
        raw = manifest.read_bytes()
    except FileNotFoundError:
        raise ZooError(
            f"no {MANIFEST_FILE} in {root}; build the zoo with `tierwise zoo build --out {root}`"
        ) from None
    except OSError as exc:
        raise ZooError(f"cannot read {manifest}: {exc}") from exc
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ZooError(f"{manifest} is not valid JSON: {exc}") from exc
    try:
        entry = _ManifestEntry.model_validate(document)
    except ValidationError as exc:
        raise ZooError(f"{manifest} is not a valid zoo manifest: {_describe(exc)}") from exc
    zoo = _from_entry(root, entry)
    files = [(EVAL_FILE, zoo.eval_sha256)] + [(v.path, v.sha256) for v in zoo.variants]
    files += [(v.reference, v.reference_sha256 or "") for v in zoo.variants if v.reference]
    for relative, expected in files:
        path = root / relative
        if not path.is_file():
            raise ZooError(f"{manifest} lists {relative}, but {path} does not exist")
        if verify and sha256_of(path) != expected:
            raise ZooError(f"{path} does not match the sha256 recorded in {manifest}")
    return zoo


def zoo_is_current(directory: str | Path, seed: int) -> bool:
    """True when ``directory`` holds a complete zoo built with ``seed`` by this builder
    version, every variant with its drift reference, and no file has changed since (every
    sha256 matches), so a rebuild can be skipped."""
    try:
        zoo = load_zoo(directory, verify=True)
    except ZooError:
        return False
    complete = all(v.reference is not None for v in zoo.variants)
    return complete and zoo.seed == seed and zoo.builder_version == BUILDER_VERSION


def load_eval(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out split of a zoo: images FP32 ``[N, 8, 8]`` in [0, 1], labels INT64 ``[N]``."""
    path = Path(directory) / EVAL_FILE
    if not path.is_file():
        raise ZooError(f"no {EVAL_FILE} in {directory}; build the zoo first")
    try:
        arrays = read_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ZooError(f"cannot read {path}: {exc}") from exc
    x, y = arrays.get("x"), arrays.get("y")
    if x is None or y is None:
        raise ZooError(f"{path} must hold arrays 'x' and 'y', it has {sorted(arrays)}")
    if x.dtype != np.float32 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise ZooError(f"{path}: 'x' must be float32 [N, 8, 8], got {x.dtype} {list(x.shape)}")
    if y.dtype != np.int64 or y.shape != (x.shape[0],):
        raise ZooError(f"{path}: 'y' must be int64 [{x.shape[0]}], got {y.dtype} {list(y.shape)}")
    return x, y
