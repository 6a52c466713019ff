"""Measurement: latency of models and tiers, and the profiles the planner reads.

:func:`profile_zoo` / :func:`profile_files` measure ONNX variants on this machine,
:func:`profile_endpoint` a live V2 tier end to end; both give :class:`VariantProfile`
entries of a :class:`ProfileSet` (``profiles.json``, schema :data:`PROFILES_SCHEMA`),
written by :func:`save_profiles` and read back, validated, by :func:`load_profiles`.
Each input is timed at the shape the model really sees (:func:`plan_inputs`): samples of
an :class:`EvalSet` (``--eval``), a shape given per input (``--input-shape``), or the
signature's own when it is concrete apart from the batch dimension; which one is
recorded per variant (:class:`TimedInput`).

The profile schema loads eagerly; what measures (onnxruntime, the router's HTTP client)
loads on first use, so the planner can read profiles without either.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tierwise.bench.latency import LatencyStats, latency_stats, measure_latency
from tierwise.bench.profiles import (
    PROFILES_SCHEMA,
    BatchLatency,
    Host,
    ProfileSet,
    ProfileSettings,
    TimedInput,
    VariantProfile,
    load_profiles,
    parse_profiles,
    save_profiles,
)

if TYPE_CHECKING:
    from tierwise.bench.endpoint import (
        endpoint_signature,
        profile_endpoint,
        profile_endpoint_set,
    )
    from tierwise.bench.evalset import EvalSet
    from tierwise.bench.host import PeakMemory, host_info
    from tierwise.bench.inputs import TimedInputs, plan_inputs
    from tierwise.bench.measure import (
        DEFAULT_BATCH_SIZES,
        MeasureSettings,
        default_providers,
        profile_files,
        profile_model,
        profile_zoo,
    )
    from tierwise.bench.synthetic import dense_stack_model

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "PROFILES_SCHEMA",
    "BatchLatency",
    "EvalSet",
    "Host",
    "LatencyStats",
    "MeasureSettings",
    "PeakMemory",
    "ProfileSet",
    "ProfileSettings",
    "TimedInput",
    "TimedInputs",
    "VariantProfile",
    "default_providers",
    "dense_stack_model",
    "endpoint_signature",
    "host_info",
    "latency_stats",
    "load_profiles",
    "measure_latency",
    "parse_profiles",
    "plan_inputs",
    "profile_endpoint",
    "profile_endpoint_set",
    "profile_files",
    "profile_model",
    "profile_zoo",
    "save_profiles",
]

_LAZY = {
    "endpoint_signature": "endpoint",
    "profile_endpoint": "endpoint",
    "profile_endpoint_set": "endpoint",
    "EvalSet": "evalset",
    "TimedInputs": "inputs",
    "plan_inputs": "inputs",
    "PeakMemory": "host",
    "host_info": "host",
    "DEFAULT_BATCH_SIZES": "measure",
    "MeasureSettings": "measure",
    "default_providers": "measure",
    "profile_files": "measure",
    "profile_model": "measure",
    "profile_zoo": "measure",
    "dense_stack_model": "synthetic",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tierwise.bench' has no attribute {name!r}")
    return getattr(import_module(f"tierwise.bench.{module}"), name)
