"""``profiles.json``: measured profiles of model variants, as a versioned, validated schema.

Shape (``schema`` names the version; readers refuse any they do not know)::

    {
      "schema": "tierwise.profiles/2",
      "created_at": "2024-05-01T12:00:00Z",
      "host": {"label": "laptop", "hostname": "...", "platform": "Linux-6.1-x86_64",
               "machine": "x86_64", "cpu_model": "...", "cpu_cores": 8, "memory_gib": 31.2,
               "accelerator": null, "onnxruntime": "1.18.0", "python": "3.11.9"},
      "tiers": ["store-edge"],          # spec tiers whose hardware this host is (may be [])
      "settings": {"runs": 200, "warmup_runs": 10, "max_seconds_per_batch": 2.0,
                   "intra_op_threads": 1},
      "profiles": [
        {"model": "digits", "variant": "small", "provider": "CPUExecutionProvider",
         "source": "onnxruntime", "path": "/models/small/1/model.onnx", "sha256": "...",
         "url": null, "includes_network": false, "size_bytes": 29593,
         "peak_memory_mib": 3.1, "accuracy": 0.924, "eval_samples": 1617,
         "inputs": [{"name": "image", "datatype": "FP32", "shape": [8, 8],
                     "batched": true, "source": "eval"}],
         "energy_source": "estimated",
         "batches": [{"batch_size": 1, "runs": 200, "mean_ms": 0.02, "p50_ms": 0.02,
                      "p95_ms": 0.03, "p99_ms": 0.05, "throughput_per_s": 48000.0,
                      "energy_j_per_inference": 0.00014}, ...]}
      ]
    }

Latencies are wall-clock milliseconds of one call carrying ``batch_size`` rows, from one
caller at a time; ``throughput_per_s`` is rows per second of that single stream
(``batch_size x 1000 / mean_ms``). ``peak_memory_mib`` is how much the process's peak
resident memory grew while the model was loaded and timed (the eval set is not part of it:
see :func:`tierwise.bench.measure.profile_model`). ``accuracy`` is measured on the eval
set (the zoo's held-out split, or ``--eval``) when there is one. ``inputs`` says what each
call was fed (:class:`TimedInput`): the shape of each input (without the batch dimension
when ``batched``: a call of ``batch_size`` rows is ``[batch_size, *shape]``) and where that
shape came from: rows of the eval set (``eval``), ``--input-shape`` (``flag``), or the
model's signature, concrete apart from the batch dimension (``signature``). A profile
with ``includes_network`` was measured through a live endpoint (``tierwise bench
endpoint``): its latencies include the round trip from the measuring machine.

``energy_j_per_inference`` (optional, per batch size) is the energy of one row, in joules:
``energy_source`` ``measured`` when the machine's RAPL counters were readable (the
package energy over the batch size's calls / the rows they carried), ``estimated`` when
a power model was given instead (``active_watts`` x mean call time / batch size). The
variant's :attr:`VariantProfile.energy_j_per_inference` is the smallest batch's: one
request's inference, what the planner charges. Without either, both are absent.

``model`` is the spec model the variant belongs to when known (``null`` matches any model
with a variant of that name). ``tiers`` lists the spec tiers whose hardware the host is:
the planner prefers these measurements for those tiers over a host profile scaled by a
tier's ``hardware.speed_factor``.

Older versions still load: a ``tierwise.profiles/1`` document (no ``inputs``: what it
timed is unknown) is read as version 2 with ``inputs`` null, and is written back as
version 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tierwise.errors import ProfileError
from tierwise.spec.base import Name
from tierwise.spec.messages import format_path, translate
from tierwise.spec.tiers import PowerModel

__all__ = [
    "PROFILES_SCHEMA",
    "BatchLatency",
    "Host",
    "ProfileSet",
    "ProfileSettings",
    "TimedInput",
    "VariantProfile",
    "load_profiles",
    "parse_profiles",
    "save_profiles",
]

PROFILES_SCHEMA = "tierwise.profiles/2"
#: Earlier versions this reader still accepts (read as the current one).
_OLDER_SCHEMAS = ("tierwise.profiles/1",)

#: Where a timed input's shape came from.
InputSource = Literal["eval", "flag", "signature"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Host(_Model):
    """The machine a profile was measured on."""

    label: str | None = None
    hostname: str | None = None
    platform: str | None = None
    machine: str | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = Field(default=None, ge=1)
    memory_gib: float | None = Field(default=None, gt=0)
    accelerator: str | None = None
    onnxruntime: str | None = None
    python: str | None = None


class BatchLatency(_Model):
    """Latency of one call of ``batch_size`` rows, and the single-stream throughput."""

    batch_size: int = Field(ge=1)
    runs: int = Field(ge=1)
    mean_ms: float = Field(gt=0)
    p50_ms: float = Field(gt=0)
    p95_ms: float = Field(gt=0)
    p99_ms: float = Field(gt=0)
    throughput_per_s: float = Field(gt=0)
    energy_j_per_inference: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> BatchLatency:
        if not self.p50_ms <= self.p95_ms <= self.p99_ms:
            raise ValueError(
                "expected p50_ms <= p95_ms <= p99_ms, got "
                f"{self.p50_ms:g}, {self.p95_ms:g}, {self.p99_ms:g}"
            )
        return self


class TimedInput(_Model):
    """One input as the measurement fed it: ``shape`` is each call's shape without the
    batch dimension when ``batched`` (the batch size measured fills it), else each call's
    whole shape; ``source`` says where the shape came from."""

    name: str = Field(min_length=1)
    datatype: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]]
    batched: bool
    source: InputSource


class VariantProfile(_Model):
    """One variant measured with one execution provider (or through one endpoint)."""

    model: Name | None = None
    variant: Name
    provider: str = Field(min_length=1)
    source: Literal["onnxruntime", "endpoint"] = "onnxruntime"
    path: str | None = None
    sha256: str | None = None
    url: str | None = None
    includes_network: bool = False
    size_bytes: int | None = Field(default=None, ge=0)
    peak_memory_mib: float | None = Field(default=None, ge=0)
    accuracy: float | None = Field(default=None, ge=0, le=1)
    eval_samples: int | None = Field(default=None, ge=1)
    inputs: list[TimedInput] | None = None
    energy_source: Literal["measured", "estimated"] | None = None
    batches: list[BatchLatency] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_batches(self) -> VariantProfile:
        sizes = [b.batch_size for b in self.batches]
        if sizes != sorted(set(sizes)):
            raise ValueError(f"expected distinct batch sizes in increasing order, got {sizes}")
        with_energy = any(b.energy_j_per_inference is not None for b in self.batches)
        if with_energy and self.energy_source is None:
            raise ValueError("expected energy_source (measured or estimated) with energy figures")
        names = [t.name for t in self.inputs or ()]
        if len(set(names)) != len(names):
            raise ValueError(f"expected each input once in inputs, got {names}")
        return self

    def batch(self, batch_size: int) -> BatchLatency | None:
        """The measurement at ``batch_size``, if there is one."""
        return next((b for b in self.batches if b.batch_size == batch_size), None)

    @property
    def single(self) -> BatchLatency:
        """The smallest batch measured (batch 1 when measured): one request's latency."""
        return self.batches[0]

    @property
    def energy_j_per_inference(self) -> float | None:
        """Joules of one request's inference (the smallest batch measured), if known."""
        return self.single.energy_j_per_inference

    @property
    def max_throughput_per_s(self) -> float:
        """The best rows per second over every batch size measured."""
        return max(b.throughput_per_s for b in self.batches)


class ProfileSettings(_Model):
    """How the measurements were taken."""

    runs: int = Field(ge=1)
    warmup_runs: int = Field(ge=0)
    max_seconds_per_batch: float = Field(gt=0)
    intra_op_threads: int | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1)
    power: PowerModel | None = Field(
        default=None, description="the power model energy was estimated with, if any"
    )


class ProfileSet(_Model):
    """A profiles document: where and how it was measured, and one entry per variant and
    provider."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    schema_id: Literal["tierwise.profiles/2"] = Field(default="tierwise.profiles/2", alias="schema")
    created_at: str
    host: Host
    tiers: list[Name] = Field(default_factory=list)
    settings: ProfileSettings
    profiles: list[VariantProfile] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_per_key(self) -> ProfileSet:
        seen: set[tuple[str | None, str, str]] = set()
        for i, p in enumerate(self.profiles):
            key = (p.model, p.variant, p.provider)
            if key in seen:
                raise ValueError(
                    f"profiles[{i}]: variant {p.variant!r} with provider {p.provider!r}"
                    " is measured twice"
                )
            seen.add(key)
        return self

    def to_dict(self) -> dict[str, object]:
        """The JSON document (``schema`` first)."""
        return self.model_dump(mode="json", by_alias=True)


def _schema_problem(data: object) -> str | None:
    if not isinstance(data, dict):
        return "expected a JSON object with schema, host and profiles"
    schema = data.get("schema")
    if schema is None:
        return f"field required: schema (expected {PROFILES_SCHEMA!r})"
    if schema != PROFILES_SCHEMA and schema not in _OLDER_SCHEMAS:
        older = ", ".join(repr(s) for s in _OLDER_SCHEMAS)
        return f"expected schema {PROFILES_SCHEMA!r} (or an older {older}), got {schema!r}"
    return None


def _upgraded(data: dict[str, object]) -> tuple[dict[str, object], str | None]:
    """A version-1 document as version 2 (it lacks only ``inputs``), or the path of a
    field version 1 did not have."""
    if data.get("schema") == PROFILES_SCHEMA:
        return data, None
    profiles = data.get("profiles")
    for i, entry in enumerate(profiles if isinstance(profiles, list) else ()):
        if isinstance(entry, dict) and "inputs" in entry:
            return data, f"profiles[{i}].inputs"
    return {**data, "schema": PROFILES_SCHEMA}, None


def parse_profiles(text: str | bytes, file: str = "<string>") -> ProfileSet:
    """Read and validate a profiles document (the current version or an older one, read as
    the current); ProfileError naming the field otherwise."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProfileError(file, "", f"invalid JSON: {exc}") from exc
    problem = _schema_problem(data)
    if problem is not None:
        raise ProfileError(file, "schema", problem)
    data, newer = _upgraded(data)
    if newer is not None:
        raise ProfileError(
            file, newer, f"unknown field in schema {data['schema']!r} (new in {PROFILES_SCHEMA!r})"
        )
    try:
        return ProfileSet.model_validate(data)
    except ValidationError as exc:
        found = translate(exc, (), ProfileSet)
        loc, message = found[0]
        more = "".join(f"; {format_path(lc) or '<root>'}: {m}" for lc, m in found[1:])
        raise ProfileError(file, format_path(loc), message + more) from exc


def load_profiles(path: str | os.PathLike[str]) -> ProfileSet:
    """Read and validate the profiles file at ``path``; ProfileError naming the file and
    the field otherwise."""
    file = os.fspath(path)
    try:
        text = Path(file).read_bytes()
    except OSError as exc:
        raise ProfileError(file, "", f"cannot read: {exc.strerror or exc}") from exc
    return parse_profiles(text, file)


def save_profiles(profiles: ProfileSet, path: str | os.PathLike[str]) -> Path:
    """Write ``profiles`` as indented JSON (stable key order) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(profiles.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    return out
