"""The device models a gateway hands to pages: per workload whose first cascade stage runs
on a device, the ONNX file of that stage, its sha256, size, version and signature.

A workload's model comes from the plan (the first stage's tier's ``local.model``; its
version is the tier's ``variant`` and the digest's first 12 hex digits) or, when the
gateway's settings name one for the workload (``device_bundles``), from a bundle
directory as ``tierwise bundle create`` makes it: the manifest's version, the variant
the tier names (or its only one) and that variant's sha256 from the manifest, checked
against the blob before it is offered. Either is looked at again whenever a page asks
(one ``stat``): a replaced file or a new manifest is read, hashed and checked, and only a
good one replaces what is offered; a bad one is logged and the last good one stays.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierwise.errors import BundleError, ConfigError, HttpError, TierwiseError
from tierwise.planfile.schema import Plan
from tierwise.registry.bundle import MANIFEST_FILE, read_bundle_dir
from tierwise.runtime.base import TensorSpec
from tierwise.runtime.onnx import read_signature

__all__ = ["PAGE_RULES", "Blob", "DeviceModel", "DeviceModels"]

log = logging.getLogger("tierwise.router")

#: The rules the page computes (tierwise-device's rules.js).
PAGE_RULES = ("max_prob", "margin", "entropy")
#: onnxruntime-web tensor types by V2 datatype.
_WEB_TYPES = {
    "BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "UINT16": "uint16", "INT16": "int16",
    "UINT32": "uint32", "INT32": "int32", "UINT64": "uint64", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64",
}  # fmt: skip
#: the largest device model a gateway offers (it is held in memory while current)
MAX_MODEL_BYTES = 256 * 1024 * 1024


class Blob:
    """A model's bytes, shared by every workload that offers the same digest."""

    __slots__ = ("__weakref__", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data


@dataclass(frozen=True)
class DeviceModel:
    """One workload's device model as offered to pages."""

    workload: str
    tier: str
    sha256: str  # lowercase hex
    size_bytes: int
    version: str
    source: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    blob: Blob

    @property
    def data(self) -> bytes:
        return self.blob.data

    def describe(self) -> dict[str, Any]:
        """The ``model`` section of the device settings."""
        return {
            "url": f"/v2/models/{self.workload}/device/model/sha256/{self.sha256}",
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "version": self.version,
            "inputs": [_tensor(t) for t in self.inputs],
            "outputs": [_tensor(t) for t in self.outputs],
        }


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "datatype": spec.datatype,
        "type": _WEB_TYPES.get(spec.datatype),
        "shape": list(spec.shape),
    }


class _Source:
    """Where one workload's model comes from, re-read when its file changes."""

    def __init__(
        self,
        workload: str,
        tier: str,
        variant: str | None,
        path: Path,
        bundle: bool,
        blobs: weakref.WeakValueDictionary[str, Blob],
    ) -> None:
        self.workload, self.tier, self.variant = workload, tier, variant
        self.blobs = blobs  # one copy of each digest in memory, whoever offers it
        self.path = path  # the model file, or the bundle directory
        self.bundle = bundle
        self.stamp: tuple[int, int, int] | None = None
        self.model: DeviceModel | None = None
        self.problem: Exception | None = None  # why the last look found no good model
        self.lock = threading.Lock()

    @property
    def watched(self) -> Path:
        return self.path / MANIFEST_FILE if self.bundle else self.path

    def current(self) -> DeviceModel:
        with self.lock:
            try:
                st = self.watched.stat()
            except OSError as exc:  # gone for now: the last good model stays
                self.problem = exc
            else:
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                if stamp != self.stamp:
                    self.stamp = stamp  # read once per change, good or bad
                    self._refresh()
            if self.model is None:
                raise ConfigError(f"device model of {self.workload}", "a readable ONNX model",
                                  f"{self.path}: {self.problem}")  # fmt: skip
            return self.model

    def _refresh(self) -> None:
        try:
            model = self._read()
        except (TierwiseError, OSError, ValueError) as exc:
            self.problem = exc
            if self.model is not None:
                log.error("device model of %s: %s; %s stays", self.workload, exc,
                          self.model.version)  # fmt: skip
            return
        if self.model is not None and model.sha256 != self.model.sha256:
            log.info("device model of %s is now %s", self.workload, model.version)
        self.model, self.problem = model, None

    def _read(self) -> DeviceModel:
        if not self.bundle:
            data = _read_bounded(self.path)
            digest = hashlib.sha256(data).hexdigest()
            signature = read_signature(self.path)
            version = f"{self.variant}@{digest[:12]}" if self.variant else digest[:12]
            blob = self._blob(digest, data)
            return DeviceModel(
                self.workload,
                self.tier,
                digest,
                len(data),
                version,
                str(self.path),
                signature.inputs,
                signature.outputs,
                blob,
            )
        bundle = read_bundle_dir(self.path)  # every blob checked against the manifest
        variants = {v.name: v for v in bundle.manifest.variants}
        if self.variant in variants:
            entry = variants[self.variant]
        elif len(variants) == 1:
            entry = next(iter(variants.values()))
        else:
            raise BundleError(
                f"{self.path}: variant {self.variant!r} of tier {self.tier} is not in the"
                f" bundle (it has {', '.join(sorted(variants))})"
            )
        data = _read_bounded(bundle.blob(entry.digest))
        digest = hashlib.sha256(data).hexdigest()
        if f"sha256:{digest}" != entry.digest:  # replaced since read_bundle_dir checked it
            raise BundleError(f"{self.path}: blob of variant {entry.name} changed while read")
        m = bundle.manifest
        inputs = tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in m.inputs)
        outputs = tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in m.outputs)
        return DeviceModel(self.workload, self.tier, digest, len(data),
                           f"{m.name}:{m.version}/{entry.name}", f"bundle {self.path}",
                           inputs, outputs, self._blob(digest, data))  # fmt: skip

    def _blob(self, digest: str, data: bytes) -> Blob:
        blob = self.blobs.get(digest)
        if blob is None:
            blob = self.blobs[digest] = Blob(data)
        return blob


def _read_bounded(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ConfigError(str(path), f"a device model of at most {MAX_MODEL_BYTES} bytes", size)
    return path.read_bytes()


class DeviceModels:
    """Every workload's device model. ``bundles`` maps workloads to bundle directories
    that replace the plan's model file. A workload whose first stage is not on a
    device-kind tier with a local model, or whose rule the page cannot compute, has none
    (:meth:`why_not` says why)."""

    def __init__(self, plan: Plan, bundles: dict[str, Path] | None = None) -> None:
        self.plan = plan
        self._sources: dict[str, _Source] = {}
        self._absent: dict[str, str] = {}
        blobs: weakref.WeakValueDictionary[str, Blob] = weakref.WeakValueDictionary()
        bundles = dict(bundles or {})
        unknown = sorted(set(bundles) - set(plan.workloads))
        if unknown:
            raise ConfigError(
                "device_bundles",
                f"workloads of the plan ({', '.join(sorted(plan.workloads))})",
                unknown,
            )
        for name, workload in plan.workloads.items():
            stage = workload.cascade[0]
            tier = plan.tiers[stage.tier]
            last = len(workload.cascade) == 1
            if tier.kind != "device":
                self._absent[name] = f"its first stage runs on {stage.tier}, a {tier.kind} tier"
            elif not last and stage.rule not in PAGE_RULES:
                self._absent[name] = (
                    f"its first stage's rule {stage.rule!r} does not run in a page"
                    f" (one of {', '.join(PAGE_RULES)} does)"
                )
            elif name in bundles:
                self._sources[name] = _Source(
                    name, stage.tier, tier.variant, bundles[name], True, blobs
                )
            elif tier.local is not None:
                path = Path(tier.local.model)
                self._sources[name] = _Source(name, stage.tier, tier.variant, path, False, blobs)
            else:
                self._absent[name] = f"its device tier {stage.tier} has no local model file"

    @property
    def workloads(self) -> list[str]:
        """The workloads a page can run, in the plan's order."""
        return list(self._sources)

    def why_not(self, workload: str) -> str | None:
        return self._absent.get(workload)

    def check(self) -> None:
        """Read every model now (the gateway's startup): ConfigError for one that is not
        there or not a readable model."""
        for source in self._sources.values():
            source.current()

    def current(self, workload: str) -> DeviceModel:
        """The workload's model now; 404 when it has none (with why)."""
        source = self._sources.get(workload)
        if source is None:
            known = ", ".join(sorted(self.plan.workloads))
            why = self._absent.get(workload, f"the plan has no such workload (it has {known})")
            raise HttpError(404, f"workload {workload!r} has no device model: {why}")
        return source.current()
