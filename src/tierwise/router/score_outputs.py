"""Which tensor each cascade stage reads its scores from, checked against the model.

A stage names its score tensor in the plan (``output:``, with ``scores: probabilities |
logits``) or leaves it to the model: ``probabilities`` when the model has an output of
that name, else its only float ``[rows, classes >= 2]`` output; with several such outputs
or none, the stage must name one. Nothing here knows any model's output names.

The router checks every stage when it starts (:func:`check_stages`), against its tier's
model: a local tier's signature, a remote tier's ``GET /v2/models/{model}``. A stage
naming an output the model lacks, or one that holds no scores (not float, or not
``[rows, classes]``), or leaving the choice to a model that offers none or several, is a
plan mistake: ConfigError naming the stage, the tier, the model and the outputs that
exist. A tier that cannot be asked at start (a remote that is down) does not hold up the
start: its stages are checked on their first answer (:func:`check_answer`), and a score
tensor found wrong while serving makes that tier's answer a failure
(:func:`stage_failure`, a TierError the router falls back from), never the client's error.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tierwise.errors import ConfigError, ProtocolError, TierError
from tierwise.escalation.rules import (
    DEFAULT_SCORE_OUTPUT,
    CallableRule,
    DetectorScore,
    EscalationRule,
)
from tierwise.protocol import datatype_of
from tierwise.router.stages import Step, scorer
from tierwise.router.tiers import Tier
from tierwise.runtime import Signature, TensorSpec

__all__ = [
    "answer_confidence",
    "FLOAT_DATATYPES",
    "check_answer",
    "check_stages",
    "describe_outputs",
    "resolve_score_output",
    "stage_failure",
]

log = logging.getLogger("tierwise.router")

#: V2 datatypes a score tensor may have.
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})


def _dims(shape: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def describe_outputs(outputs: Sequence[TensorSpec]) -> str:
    """``'probabilities' FP32 [?, 10], 'label' INT64 [?]`` (``?``: a dynamic dimension)."""
    return ", ".join(f"{t.name!r} {t.datatype} {_dims(t.shape)}" for t in outputs) or "none"


def _problem(spec: TensorSpec, min_columns: int) -> str | None:
    """Why ``spec`` holds no scores, or None."""
    what = f"{spec.datatype} {_dims(spec.shape)}"
    if spec.datatype not in FLOAT_DATATYPES:
        return f"{what}, not a float tensor"
    if len(spec.shape) != 2:
        return f"{what}, not [rows, classes]"
    if 0 <= spec.shape[1] < min_columns:
        return f"{what}, fewer than {min_columns} columns"
    return None


def resolve_score_output(
    declared: str | None, outputs: Sequence[TensorSpec], *, min_columns: int = 2
) -> tuple[str | None, str | None]:
    """The output to read scores from, and None; or None and what was expected instead
    (text to follow "expected", naming the outputs the model has). ``declared`` is the
    name the plan gives (None: pick as the module docs say)."""
    by_name = {t.name: t for t in outputs}
    have = f"the model's outputs: {describe_outputs(outputs)}"
    name = declared
    if name is None and DEFAULT_SCORE_OUTPUT in by_name:
        name = DEFAULT_SCORE_OUTPUT
    if name is not None:
        spec = by_name.get(name)
        if spec is None:
            return None, f"an output named {name!r}, but the model has none; {have}"
        problem = _problem(spec, min_columns)
        if problem is not None:
            return None, (
                f"output {name!r} to hold scores (float [rows, classes]), but it is {problem};"
                f" {have}"
            )
        return name, None
    fit = [t.name for t in outputs if _problem(t, min_columns) is None]
    if len(fit) == 1:
        return fit[0], None
    which = "none is" if not fit else f"{len(fit)} are ({', '.join(map(repr, fit))})"
    return None, (
        f"output: naming the tensor that holds the scores (no output is named"
        f" {DEFAULT_SCORE_OUTPUT!r} and {which} float [rows, classes >= {min_columns}]); {have}"
    )


def _checkable(step: Step) -> tuple[EscalationRule | None, str | None, int]:
    """The step's rule when it is one of the registry's (whose output can be checked),
    the output to check (None: pick one) and the fewest columns it may have."""
    rule = step.rule
    if isinstance(rule, EscalationRule) and not isinstance(rule, CallableRule):
        return rule, rule.output, 1 if isinstance(rule, DetectorScore) else 2
    return None, step.output, 2


def _bind(step: Step, outputs: Sequence[TensorSpec], model: str) -> None:
    rule, declared, columns = _checkable(step)
    if rule is None and declared is None:  # a callable rule reads what it reads
        step.checked = True
        return
    name, expected = resolve_score_output(declared, outputs, min_columns=columns)
    if name is None:
        raise ConfigError(
            f"{step.where} (tier {step.name!r}, model {model!r})", expected or "a score output"
        )
    if rule is not None and rule.output != name:
        resolved = copy.copy(rule)  # the rule may be shared; this stage reads ``name``
        resolved.output = name
        step.rule = resolved
        step.score = scorer(resolved)
    step.reads = name if rule is not None else None
    step.checked = True


async def _signature(tier: Tier) -> Signature | TierError | None:
    try:
        return await tier.model_signature()
    except TierError as exc:
        return exc


async def check_stages(steps: Iterable[Step]) -> None:
    """Check the score output of every step not checked yet against its tier's model,
    each tier asked once and all at the same time (module docs). ConfigError for the
    first stage found wrong; tiers that cannot be asked now are logged and left to
    :func:`check_answer`."""
    pending = [s for s in steps if not s.checked]
    tiers = {s.name: s.tier for s in pending}
    found = dict(
        zip(tiers, await asyncio.gather(*(_signature(t) for t in tiers.values())), strict=True)
    )
    for name, got in found.items():
        if isinstance(got, TierError):
            log.warning(
                "tier %r: its model's metadata could not be read at start (%s); the score"
                " outputs of its stages are checked on their first answer",
                name,
                got.reason,
            )
    for step in pending:
        signature = found[step.name]
        if isinstance(signature, Signature):
            _bind(step, signature.outputs, step.tier.model_label)


def _spec(name: str, value: np.ndarray) -> TensorSpec:
    array = np.asarray(value)
    try:
        datatype = datatype_of(array, tensor=name)
    except ProtocolError:  # a dtype V2 cannot name: not a score tensor either
        datatype = str(array.dtype)
    return TensorSpec(name, datatype, tuple(int(d) for d in np.shape(value)))


def check_answer(step: Step, outputs: Mapping[str, np.ndarray]) -> None:
    """Check a step's score output on an answer (its first, when the model could not be
    asked at start); ConfigError as :func:`check_stages` raises it."""
    _bind(step, [_spec(n, v) for n, v in outputs.items()], step.tier.model_label)
    log.info("%s (tier %r): score output checked on its first answer", step.where, step.name)


def stage_failure(step: Step, exc: ConfigError) -> TierError:
    """What a score tensor found wrong while serving amounts to: the tier's failure (the
    router falls back to the next stage), logged when it is new and kept as
    ``step.problem``."""
    reason = f"{step.where} cannot read scores from the answer of {step.tier.model_label!r}: {exc}"
    if reason != step.problem:
        log.error("%s", reason)
    step.problem = reason
    return TierError(reason, tier=step.name)


def answer_confidence(step: Step, outputs: Mapping[str, np.ndarray]) -> float:
    """An answer's confidence by the stage's rule (1.0 without one); TierError when the
    stage's score tensor is not in it as the plan says (a failure to fall back from, not
    the client's)."""
    if step.score is None:
        return 1.0
    try:
        if not step.checked:
            check_answer(step, outputs)
        return step.score(outputs)
    except ConfigError as exc:
        raise stage_failure(step, exc) from exc
