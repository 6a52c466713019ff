"""The bundle manifest: what a versioned model bundle holds, as signed JSON.

A manifest names the bundle and version, the task, the input/output signature shared by
every variant (a bundle is one model; a node serving several models syncs several
bundles), and each variant (runtime, quantization, hardware tags, the sha256 digest
and size of its blob, accuracy when measured, and the digest and size of its drift
reference when it has one), with the creation time and the parent version. Its
canonical bytes (sorted keys, no whitespace) are what is signed and what its digest is
computed over; a reader checks the size limit, the signature and only then parses it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tierwise.errors import BundleError
from tierwise.registry.digest import DIGEST_PATTERN, digest_bytes
from tierwise.telemetry.drift_reference import MAX_REFERENCE_BYTES, REFERENCE_FILE

__all__ = [
    "BUNDLE_SCHEMA",
    "MAX_MANIFEST_BYTES",
    "MAX_REFERENCE_BYTES",
    "REFERENCE_FILE",
    "BlobRef",
    "BundleManifest",
    "TensorSig",
    "VariantEntry",
    "check_name",
    "check_version",
    "parse_manifest",
]

BUNDLE_SCHEMA = "tierwise.bundle/1"
#: manifests past this size are refused before they are parsed
MAX_MANIFEST_BYTES = 1024 * 1024

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# an OCI tag, so a version can be pushed to any registry as it is
_VERSION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_TAG_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")


def check_name(value: str, *, what: str = "name") -> str:
    """A bundle or variant name: lowercase letters, digits, ``.``, ``_``, ``-``."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise BundleError(
            f"{what}: expected 1-63 lowercase letters, digits, '.', '_' or '-' starting "
            f"with a letter or digit, got {value!r}"
        )
    return value


def check_version(value: str, what: str = "version") -> str:
    """A version (or a tag, ``what``): an OCI tag (letters, digits, ``.``, ``_``, ``-``;
    up to 128)."""
    if not isinstance(value, str) or not _VERSION.match(value):
        raise BundleError(
            f"{what}: expected up to 128 letters, digits, '.', '_' or '-' (an OCI tag), "
            f"got {value!r}"
        )
    return value


def _check_relative_path(value: str) -> str:
    if value.startswith("/") or "\\" in value or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"path {value!r} is absolute; expected a path inside the bundle")
    parts = value.split("/")
    if not value or len(value) > 256:
        raise ValueError(f"path {value!r}: expected 1-256 characters")
    for part in parts:
        if part in {"..", "."} or not _PATH_PART.match(part):
            raise ValueError(
                f"path {value!r} has the part {part!r}; expected plain names "
                "(no '..', no hidden files, letters, digits, '.', '_', '-')"
            )
    return value


class TensorSig(BaseModel):
    """One input or output: V2 name, datatype and shape (-1 for a dynamic dimension)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    datatype: str = Field(pattern=r"^(BOOL|U?INT(8|16|32|64)|FP(16|32|64)|BYTES)$")
    shape: list[int] = Field(max_length=16)


class BlobRef(BaseModel):
    """A file a variant carries beside its model (its drift reference): digest and size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: str = Field(pattern=DIGEST_PATTERN.pattern)
    size_bytes: int = Field(ge=1, le=MAX_REFERENCE_BYTES)


class VariantEntry(BaseModel):
    """One variant of the model and the blob that holds it; ``reference``: its drift
    reference (``reference.json`` beside the model once installed), when it has one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    path: str
    runtime: str = Field(default="onnxruntime", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    quantization: str = Field(default="fp32", pattern=r"^[a-z0-9_-]{1,16}$")
    tags: dict[str, str] = Field(default_factory=dict, max_length=32)
    digest: str = Field(pattern=DIGEST_PATTERN.pattern)
    size_bytes: int = Field(ge=0)
    accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    reference: BlobRef | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"variant name {value!r}: expected lowercase letters, digits, .-_")
        return value

    def blobs(self) -> list[tuple[str, int]]:
        """``(digest, size_bytes)`` of every blob the variant needs: its model, then its
        drift reference when it has one."""
        found = [(self.digest, self.size_bytes)]
        if self.reference is not None:
            found.append((self.reference.digest, self.reference.size_bytes))
        return found

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _check_relative_path(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag in value.items():
            if not _TAG_KEY.match(key) or not 0 < len(tag) <= 64:
                raise ValueError(
                    f"tag {key}={tag!r}: expected a lowercase key and a value of 1-64 chars"
                )
        return value


class BundleManifest(BaseModel):
    """What a bundle version holds. Immutable once pushed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: str = Field(default=BUNDLE_SCHEMA, alias="schema")
    name: str
    version: str
    task: str = Field(default="classification", max_length=64)
    description: str = Field(default="", max_length=2048)
    inputs: list[TensorSig] = Field(min_length=1, max_length=64)
    outputs: list[TensorSig] = Field(min_length=1, max_length=64)
    variants: list[VariantEntry] = Field(min_length=1, max_length=64)
    created_at: str = Field(max_length=64)
    parent_version: str | None = None

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: str) -> str:
        if value != BUNDLE_SCHEMA:
            raise ValueError(f"expected {BUNDLE_SCHEMA!r}, got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"bundle name {value!r}: expected lowercase letters, digits, .-_")
        return value

    @field_validator("version", "parent_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.match(value):
            raise ValueError(f"version {value!r}: expected an OCI tag")
        return value

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list[VariantEntry]) -> list[VariantEntry]:
        names = [v.name for v in value]
        paths = [v.path for v in value]
        if len(set(names)) != len(names) or len(set(paths)) != len(paths):
            raise ValueError("variant names and paths must be unique")
        return value

    def canonical_bytes(self) -> bytes:
        """The bytes that are signed and stored: sorted keys, no whitespace. A variant
        without a drift reference has no ``reference`` key, so manifests made before
        references keep their bytes and digests."""
        data = self.model_dump(mode="json", by_alias=True)
        for variant in data["variants"]:
            if variant["reference"] is None:
                del variant["reference"]
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    @property
    def digest(self) -> str:
        return digest_bytes(self.canonical_bytes())

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def variant(self, name: str) -> VariantEntry:
        for entry in self.variants:
            if entry.name == name:
                return entry
        raise BundleError(
            f"no variant {name!r}; it has " + ", ".join(v.name for v in self.variants),
            bundle=self.ref,
        )

    def chosen(self, names: Sequence[str] | None) -> list[VariantEntry]:
        """The variants called ``names`` (all of them for None)."""
        return list(self.variants) if names is None else [self.variant(n) for n in names]

    def blob_digests(self, names: Sequence[str] | None = None) -> list[str]:
        """Every blob the variants called ``names`` (all for None) need: models and drift
        references."""
        return sorted({digest for v in self.chosen(names) for digest, _ in v.blobs()})


def parse_manifest(data: bytes, *, limit_bytes: int = MAX_MANIFEST_BYTES) -> BundleManifest:
    """Parse manifest bytes, refusing oversized, non-JSON and invalid manifests with the
    check that failed named."""
    if len(data) > limit_bytes:
        raise BundleError(
            f"manifest size check failed: {len(data)} bytes, the limit is {limit_bytes}"
        )
    try:
        raw: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"manifest: expected a JSON object, got {type(raw).__name__}")
    try:
        return BundleManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        bundle = f"{raw.get('name')}:{raw.get('version')}" if "name" in raw else None
        raise BundleError(
            f"manifest check failed at {where}: {first['msg']}", bundle=bundle
        ) from exc
