"""Profile a live V2 tier end to end, network included: ``tierwise bench endpoint URL``.

Requests go through the router's own :class:`~tierwise.router.tiers.RemoteTier` (pooled
keep-alive connections, the binary-tensor extension when the peer lists it), so what is
measured is what the router will see: encoding, the round trip, the server's queue and the
model. For each batch size, the latency percentiles come from one caller at a time after
warm-up, and the throughput from ``concurrency`` callers in a closed loop. Inputs follow
the same rules as a local measurement (:mod:`tierwise.bench.inputs`), on the signature
the endpoint describes (``GET /v2/models/{model}``): samples of ``eval_data`` when given
(which, with labels, also yields the accuracy), else seeded random values at the shapes
``input_shapes`` gives or the metadata fixes. The metadata names no dimensions, so every
dynamic one besides the first needs a shape; nothing is sent before the shapes are
decided.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from tierwise.bench.evalset import EvalData, as_eval_set, predicted_labels
from tierwise.bench.host import host_info
from tierwise.bench.inputs import TimedInputs, plan_inputs
from tierwise.bench.latency import latency_stats
from tierwise.bench.measure import MeasureSettings
from tierwise.bench.profiles import BatchLatency, Host, ProfileSet, ProfileSettings, VariantProfile
from tierwise.errors import ConfigError, PayloadTooLargeError, ProtocolError, TierError
from tierwise.http.client import HttpClient
from tierwise.protocol import InferRequest, ModelMetadata
from tierwise.router.tiers import RemoteTier
from tierwise.runtime import Signature, TensorSpec

__all__ = ["endpoint_signature", "profile_endpoint", "profile_endpoint_set"]

_EVAL_CHUNK_ROWS = 256


def endpoint_signature(
    url: str, model: str, *, timeout_s: float = 5.0, authorization: str | None = None
) -> Signature:
    """The model's inputs and outputs as its endpoint describes them; TierError when
    it cannot be asked. Blocking: where an event loop runs, call it on a thread."""
    headers = {"authorization": authorization} if authorization else None
    where = f"{url.rstrip('/')}/v2/models/{model}"
    try:
        with HttpClient(timeout_s=timeout_s) as client:
            response = client.request_sync("GET", where, headers=headers)
    except TierError as exc:
        raise TierError(f"cannot reach {where}: {exc.reason}", tier=url) from exc
    except PayloadTooLargeError as exc:
        raise TierError(f"GET {where}: {exc}", tier=url) from exc
    if response.status_code != 200:
        raise TierError(f"GET {where}: HTTP {response.status_code}", tier=url)
    try:
        metadata = ModelMetadata.from_dict(response.json())
    except (ValueError, ProtocolError) as exc:
        raise TierError(f"GET {where}: unreadable model metadata: {exc}", tier=url) from exc
    return Signature(
        tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in metadata.inputs),
        tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in metadata.outputs),
    )


async def _latency(
    tier: RemoteTier, request: InferRequest, settings: MeasureSettings
) -> list[float]:
    for _ in range(settings.warmup_runs):
        await tier.infer(request, timeout_s=tier.timeout_s)
    samples: list[float] = []
    deadline = time.perf_counter() + settings.max_seconds_per_batch
    while len(samples) < settings.runs:
        start = time.perf_counter()
        await tier.infer(request, timeout_s=tier.timeout_s)
        end = time.perf_counter()
        samples.append(end - start)
        if end > deadline:
            break
    return samples


async def _throughput(
    tier: RemoteTier, request: InferRequest, batch: int, concurrency: int, seconds: float
) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await tier.infer(request, timeout_s=tier.timeout_s)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done * batch / max(time.perf_counter() - start, 1e-9)


def _stats(samples: list[float], batch: int, throughput: float) -> BatchLatency:
    stats = latency_stats(samples)
    return BatchLatency(
        batch_size=batch,
        runs=stats.runs,
        mean_ms=stats.mean_ms,
        p50_ms=stats.p50_ms,
        p95_ms=stats.p95_ms,
        p99_ms=stats.p99_ms,
        throughput_per_s=max(throughput, batch * 1000.0 / stats.mean_ms),
    )


async def _accuracy(tier: RemoteTier, inputs: TimedInputs) -> float | None:
    right = total = 0
    for feeds, labels in inputs.eval_chunks(_EVAL_CHUNK_ROWS):
        response = await tier.infer(InferRequest(feeds), timeout_s=tier.timeout_s)
        outputs = {name: np.asarray(value) for name, value in response.outputs.items()}
        predicted = predicted_labels(outputs, labels.shape[0])
        if predicted is None:
            return None
        right += int((predicted == labels).sum())
        total += labels.shape[0]
    return float(right / total) if total else None


async def profile_endpoint(
    url: str,
    model: str,
    *,
    variant: str | None = None,
    spec_model: str | None = None,
    settings: MeasureSettings | None = None,
    concurrency: int = 4,
    eval_data: EvalData | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    timeout_s: float = 5.0,
    authorization: str | None = None,
) -> VariantProfile:
    """Profile ``model`` served at ``url`` (any V2 endpoint). ``variant`` (default: the
    model's name) is the spec variant it serves; ``spec_model`` the spec model.
    ``eval_data`` and ``input_shapes`` decide the inputs as for
    :func:`~tierwise.bench.measure.profile_model`; ConfigError, before any request is
    sent, when an input's shape cannot be decided."""
    settings = settings or MeasureSettings()
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError("concurrency", "a whole number >= 1", concurrency)
    evaluation = as_eval_set(eval_data)
    signature = await asyncio.to_thread(
        endpoint_signature, url, model, timeout_s=timeout_s, authorization=authorization
    )
    inputs = plan_inputs(signature, model=model, input_shapes=input_shapes, eval_set=evaluation)
    rng = np.random.default_rng(settings.seed)
    tier = RemoteTier(
        "bench", url, model, timeout_s=timeout_s, authorization=authorization,
        max_connections=max(concurrency, 1),
    )  # fmt: skip
    try:
        batches = []
        for batch in inputs.batch_sizes(settings.batch_sizes):
            request = InferRequest(inputs.feeds(batch, rng))
            samples = await _latency(tier, request, settings)
            window = min(settings.max_seconds_per_batch, 1.0)
            throughput = await _throughput(tier, request, batch, concurrency, window)
            batches.append(_stats(samples, batch, throughput))
        accuracy = await _accuracy(tier, inputs)
    finally:
        await tier.close()
    evaluated = inputs.evaluation.samples if inputs.evaluation is not None else None
    return VariantProfile(
        model=spec_model,
        variant=variant or model,
        provider="remote",
        source="endpoint",
        url=url,
        includes_network=True,
        accuracy=accuracy,
        eval_samples=evaluated if accuracy is not None else None,
        inputs=inputs.record(),
        batches=batches,
    )


def profile_endpoint_set(
    profiles: Sequence[VariantProfile],
    *,
    settings: MeasureSettings,
    concurrency: int,
    host: Host | None = None,
    tiers: Sequence[str] = (),
) -> ProfileSet:
    """Endpoint profiles as a :class:`ProfileSet` measured from this host."""
    record = settings.record()
    return ProfileSet(
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        host=host or host_info(),
        tiers=list(tiers),
        settings=ProfileSettings(
            runs=record.runs,
            warmup_runs=record.warmup_runs,
            max_seconds_per_batch=record.max_seconds_per_batch,
            concurrency=concurrency,
        ),
        profiles=list(profiles),
    )
