"""Calibrating any cascade: each stage a model file run here or a live V2 endpoint, over
the user's own labelled data (:mod:`tierwise.calibrate.data`).

Each stage is a :class:`StageSource`: the spec's variant name, and an ONNX file (run with
onnxruntime on the CPU) or an endpoint URL ``http://host:port/v2/models/MODEL`` (any V2
server: ``tierwise serve``, Triton, KServe). Its scores are read from the output it names,
or, as the router picks it, ``probabilities`` or the model's only float ``[rows,
classes >= 2]`` output; ``scores="logits"`` applies a stable softmax first. An answer is
the model's integer ``label`` output when it has one, else the argmax of the scores, and
is right when it equals the row's label. The swept curves (:mod:`tierwise.calibrate.sweep`)
and, per variant, the output and score kind used, make the ``calibration.json`` that
``tierwise plan --calibration`` reads.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tierwise.calibrate.data import EvalData
from tierwise.calibrate.result import CalibrationResult
from tierwise.calibrate.sweep import DEFAULT_RULES, calibrate_outputs
from tierwise.errors import ConfigError, ModelLoadError, TierError
from tierwise.escalation.rules import EscalationRule, ScoreKind, softmax
from tierwise.protocol import InferRequest, RequestedOutput
from tierwise.router.score_outputs import resolve_score_output
from tierwise.router.tiers import RemoteTier
from tierwise.runtime import OnnxBackend, OnnxSettings, Signature

__all__ = ["StageRun", "StageSource", "calibrate_stages", "position_kinds", "run_stage"]

_ENDPOINT = re.compile(r"^(https?://[^/]+)(/.*?)?/v2/models/([^/]+)(?:/versions/([^/]+))?/?$")
_INTEGER = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
#: Seconds an endpoint has to answer one call.
ENDPOINT_TIMEOUT_S = 30.0

Call = Callable[[dict[str, np.ndarray], list[str]], Awaitable[dict[str, np.ndarray]]]


def position_kinds(stages: int) -> tuple[str, ...]:
    """Tier kinds by position, for default costs: the first stage a device, the last the
    cloud, any between the edge."""
    return ("device", *(["edge"] * (stages - 2)), "cloud")


@dataclass(frozen=True)
class StageSource:
    """One stage to calibrate: its variant ``name`` and an ONNX ``path`` or V2 ``url``
    (exactly one); the ``output`` holding its scores (None: picked) and their kind."""

    name: str
    path: Path | None = None
    url: str | None = None
    output: str | None = None
    scores: ScoreKind = "probabilities"

    def __post_init__(self) -> None:
        if (self.path is None) == (self.url is None):
            raise ConfigError(f"stage {self.name!r}", "exactly one of a model file or a URL")
        if self.url is not None and _ENDPOINT.match(self.url) is None:
            raise ConfigError(
                f"--endpoint {self.name}", "a URL http://HOST:PORT/v2/models/MODEL", self.url
            )

    @property
    def flag(self) -> str:
        """How the command line gave it (``--model NAME`` / ``--endpoint NAME``)."""
        return f"--model {self.name}" if self.path is not None else f"--endpoint {self.name}"


@dataclass(frozen=True)
class StageRun:
    """What one stage answered over the eval data: the output read and its kind, the
    class probabilities ``[rows, classes]`` and the answer of each row."""

    name: str
    output: str
    scores: ScoreKind
    probabilities: np.ndarray
    predicted: np.ndarray


async def _open(source: StageSource) -> tuple[Signature, Call, Callable[[], Awaitable[None]]]:
    """The stage's signature, a call ``(inputs, outputs) -> outputs`` and its closer."""
    if source.path is not None:
        if not source.path.is_file():
            raise ConfigError(source.flag, f"an ONNX file, but there is none at {source.path}")
        backend = OnnxBackend(source.name, source.path, OnnxSettings(warmup_runs=0))
        try:
            await backend.load()
        except ModelLoadError as exc:
            raise ConfigError(source.flag, "an ONNX file onnxruntime loads", exc.reason) from exc

        async def local(inputs: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
            return await backend.infer(inputs, names)

        return backend.signature, local, backend.unload
    found = _ENDPOINT.match(source.url or "")
    if found is None:
        raise ConfigError(source.flag, "a URL http://HOST:PORT/v2/models/MODEL", source.url)
    base, prefix, model, version = found.groups()
    tier = RemoteTier(
        source.name, base + (prefix or ""), model, version=version, timeout_s=ENDPOINT_TIMEOUT_S
    )
    try:
        signature = await tier.model_signature()
    except TierError as exc:
        await tier.close()
        raise ConfigError(source.flag, f"a live V2 model at {source.url}", exc.reason) from exc
    if signature is None:  # a remote tier always says; a subclass might not
        await tier.close()
        raise ConfigError(source.flag, f"V2 model metadata at {source.url}")

    async def remote(inputs: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        request = InferRequest(inputs, outputs=[RequestedOutput(n) for n in names])
        return (await tier.infer(request, timeout_s=ENDPOINT_TIMEOUT_S)).outputs

    return signature, remote, tier.close


def _label_output(signature: Signature) -> str | None:
    for spec in signature.outputs:
        if spec.name == "label" and spec.datatype in _INTEGER and 1 <= len(spec.shape) <= 2:
            return spec.name
    return None


async def run_stage(source: StageSource, data: EvalData) -> StageRun:
    """Run one stage over ``data``; ConfigError for a model or data that do not fit."""
    signature, call, close = await _open(source)
    try:
        output, expected = resolve_score_output(source.output, signature.outputs)
        if output is None:
            raise ConfigError(
                source.flag, f"{expected}; name it with --output {source.name}=TENSOR"
            )
        label = _label_output(signature)
        names = [output] if label is None else [output, label]
        scores, labels = [], []
        for batch in data.batches_for(signature.inputs, source.name):
            outputs = await call(batch, names)
            scores.append(np.asarray(outputs[output]))
            if label is not None:
                labels.append(np.asarray(outputs[label]).reshape(-1))
    finally:
        await close()
    values = np.concatenate(scores)
    if values.ndim != 2 or values.shape[0] != data.rows:
        raise ConfigError(
            f"{source.flag} output {output!r}", f"[{data.rows}, classes] over the eval rows",
            list(values.shape),
        )  # fmt: skip
    probabilities = softmax(values) if source.scores == "logits" else values.astype(np.float64)
    predicted = np.concatenate(labels) if label is not None else probabilities.argmax(axis=1)
    classes = values.shape[1]
    wrong = np.flatnonzero(data.labels >= classes)
    if wrong.size:
        raise ConfigError(
            f"--eval {data.source}: labels",
            f"class ids below {classes}, the classes of output {output!r} of {source.name!r}",
            f"{int(data.labels[wrong[0]])} (row {int(wrong[0])})",
        )
    return StageRun(source.name, output, source.scores, probabilities, predicted)


def calibrate_stages(
    sources: Sequence[StageSource],
    data: EvalData,
    *,
    rules: Sequence[str | EscalationRule] = DEFAULT_RULES,
    target_accuracy: float = 0.99,
    usd_per_inference: Mapping[str, float] | None = None,
    cost_source: str = "default",
    grid: np.ndarray | None = None,
    tiers: Sequence[str] | None = None,
) -> CalibrationResult:
    """Run every stage (cheapest first) over ``data`` and sweep each rule; the result
    records per variant the output and score kind read. ``tiers`` are the stages' tier
    kinds for default costs (default :func:`position_kinds`); ``usd_per_inference`` maps
    kinds or variant names to USD per inference."""
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError("--model/--endpoint", "a different NAME for each stage", names)

    async def run_all() -> list[StageRun]:
        return [await run_stage(source, data) for source in sources]

    runs = asyncio.run(run_all())
    result = calibrate_outputs(
        [{"probabilities": r.probabilities, "label": r.predicted} for r in runs],
        data.labels,
        variants=names,
        tiers=tiers or position_kinds(len(sources)),
        rules=rules,
        target_accuracy=target_accuracy,
        usd_per_inference=usd_per_inference,
        cost_source=cost_source,
        grid=grid,
    )
    return replace(
        result, variant_outputs={r.name: {"output": r.output, "scores": r.scores} for r in runs}
    )
