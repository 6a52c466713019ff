"""Escalation rules: how sure a tier's answer is, one score per row, from its decoded outputs.

A rule subclasses :class:`EscalationRule` and overrides :meth:`~EscalationRule.confidence`,
which maps a tier's outputs (tensor name to numpy array, rows first) to one confidence per
row in [0, 1], higher meaning more sure. :meth:`~EscalationRule.escalate` is then
``confidence < threshold``: a threshold of 0 never escalates, 1 escalates everything that is
not fully sure. The router asks :meth:`~EscalationRule.request_confidence`, the least
confident row's (a request escalates when any of its rows would); rules may override it
with a faster equivalent, as :class:`MaxProbability` does. Confidences are clipped to
[0, 1] and NaN counts as 0 (for max_prob and margin, a row holding NaN), so broken outputs
escalate rather than pass.

Which tensor a rule reads is its ``output``. The classifier rules (max_prob, margin,
entropy) read class scores ``[rows, classes]``; with ``output=None`` they read
``probabilities`` when the model has an output of that name, else the model's only float
``[rows, classes >= 2]`` output, and refuse to guess among several
(:func:`pick_score_output`). ``scores="logits"`` says the tensor holds logits: each row goes
through a numerically stable softmax first, so a rule's confidences (and its escalation
decisions) are the same for a model's logits as for their softmax.

Rules are chosen by name in config (:data:`RULES`, :func:`make_rule`); any callable
``outputs -> per-row confidence`` can be a rule through :class:`CallableRule`.
The router calls a rule on every request, so rules are vectorized numpy with no Python loop
over rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from tierwise.errors import ConfigError

__all__ = [
    "RULES",
    "CallableRule",
    "DetectorScore",
    "EscalationRule",
    "Margin",
    "MaxProbability",
    "NormalizedEntropy",
    "Outputs",
    "SCORE_KINDS",
    "ScoreKind",
    "make_rule",
    "pick_score_output",
    "softmax",
]

#: A tier's decoded outputs: tensor name to array, rows (the batch) first.
Outputs = Mapping[str, np.ndarray]

#: What a score tensor holds: class probabilities, or logits (softmax applied first).
ScoreKind = Literal["probabilities", "logits"]
SCORE_KINDS: tuple[ScoreKind, ...] = get_args(ScoreKind)

#: The output a classifier rule reads first when none is named.
DEFAULT_SCORE_OUTPUT = "probabilities"

#: Up to this many scores, MaxProbability's request confidence is computed in Python.
_PYTHON_BELOW = 256


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``[rows, classes]`` logits in float64, stable for any magnitude
    (each row's maximum is subtracted first). A row holding NaN or +inf comes out NaN, so a
    rule gives it confidence 0."""
    x = np.asarray(logits, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = x - x.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return np.asarray(e / e.sum(axis=1, keepdims=True))


def pick_score_output(outputs: Outputs) -> str | None:
    """The tensor a classifier rule reads when none is named: ``probabilities`` when
    present, else the only float ``[rows, classes >= 2]`` array; None when there is no
    such array or several (the caller says which)."""
    if DEFAULT_SCORE_OUTPUT in outputs:
        return DEFAULT_SCORE_OUTPUT
    found = [
        name
        for name, value in outputs.items()
        if isinstance(value, np.ndarray)
        and value.dtype.kind == "f"
        and value.ndim == 2
        and value.shape[1] >= 2
    ]
    return found[0] if len(found) == 1 else None


def _describe(outputs: Outputs) -> list[str]:
    return [f"{name} {np.asarray(v).dtype} {list(np.shape(v))}" for name, v in outputs.items()]


def _finite_unit(values: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] with NaN mapped to 0 (so that it escalates)."""
    # ufuncs rather than np.clip / np.nan_to_num: several times faster on one row.
    return np.where(values > 0.0, np.minimum(values, 1.0), 0.0)


class EscalationRule:
    """Base of every escalation rule.

    Override :meth:`confidence`. ``output`` names the tensor the rule reads (None: pick
    it from what the model returns, :func:`pick_score_output`); ``scores`` says whether it
    holds probabilities or logits (:meth:`tensor` applies softmax to logits); ``expects``
    (a class attribute) says what it should hold, for error messages.
    """

    name: ClassVar[str] = "rule"
    expects: ClassVar[str] = "a [rows, classes] tensor"

    def __init__(self, output: str | None = None, scores: ScoreKind = "probabilities") -> None:
        if output is not None and (not isinstance(output, str) or not output):
            raise ConfigError("output", "the name of an output tensor", output)
        if scores not in SCORE_KINDS:
            raise ConfigError("scores", f"one of {', '.join(SCORE_KINDS)}", scores)
        self.output = output
        self.scores: ScoreKind = scores

    def confidence(self, outputs: Outputs) -> np.ndarray:
        """One confidence per row in [0, 1], higher = more sure. Override point."""
        raise NotImplementedError

    def request_confidence(self, outputs: Outputs) -> float:
        """The least confident row's confidence (0.0 for no rows): what the router compares
        with the stage's threshold. Override point, for speed only: it must equal
        ``min(confidence(outputs))``."""
        scores = self.confidence(outputs)
        return float(np.min(scores)) if scores.size else 0.0

    @property
    def label(self) -> str:
        """How reports name this rule (its registry name unless overridden)."""
        return self.name

    def escalate(self, outputs: Outputs, threshold: float) -> np.ndarray:
        """Per row, whether to escalate: ``confidence(outputs) < threshold``."""
        if isinstance(threshold, bool) or not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError("threshold", "a number in [0, 1]", threshold)
        return np.asarray(self.confidence(outputs) < threshold)

    def tensor(self, outputs: Outputs, *, min_columns: int = 1) -> np.ndarray:
        """The rule's tensor as ``[rows, columns]`` (a 1-D tensor is one row); logits come
        back as probabilities (float64, softmax per row).

        Raises ConfigError naming the tensor when it is missing or out of shape, or, with
        no output named, when the outputs hold no unambiguous score tensor.
        """
        name = self.output
        if name is None:
            name = pick_score_output(outputs)
            if name is None:
                raise ConfigError(
                    "outputs",
                    f"an output named {DEFAULT_SCORE_OUTPUT!r} or exactly one float [rows,"
                    f" classes >= 2] tensor for rule {self.name!r}; set output: to the"
                    " tensor that holds the scores",
                    _describe(outputs),
                )
        found = outputs.get(name)
        if found is None:
            raise ConfigError(
                f"outputs[{name!r}]",
                f"{self.expects} for rule {self.name!r}; set output: to the tensor to read",
                sorted(outputs),
            )
        array = np.asarray(found)
        if array.ndim == 1:
            array = array[np.newaxis, :]
        if array.ndim != 2 or array.shape[1] < min_columns or array.dtype.kind not in "fiub":
            raise ConfigError(
                f"outputs[{name!r}]",
                f"{self.expects} (numeric, at least {min_columns} columns) for rule {self.name!r}",
                f"{array.dtype} {list(array.shape)}",
            )
        if self.scores == "logits":
            return softmax(array)
        return array

    def __repr__(self) -> str:
        kind = "" if self.scores == "probabilities" else f", scores={self.scores!r}"
        return f"{type(self).__name__}(output={self.output!r}{kind})"


class MaxProbability(EscalationRule):
    """Top-1 probability. Scores need not sum to one; they are clipped to [0, 1]."""

    name = "max_prob"
    expects = "class probabilities [rows, classes]"

    def confidence(self, outputs: Outputs) -> np.ndarray:
        p = self.tensor(outputs)
        return _finite_unit(p.max(axis=1).astype(np.float64, copy=False))

    def request_confidence(self, outputs: Outputs) -> float:
        # Right after a model ran, numpy's code is cold: a reduction on its fresh output
        # costs several times what it does warm, and so does each attribute looked up. For
        # one small row of floats (a device's request), one ``tolist()`` and Python's max
        # do the work; the list's shape says what the array's would. NaN (or inf - inf)
        # in the sum, and anything else, take the vectorized way.
        p = outputs.get(self.output) if self.output is not None else None
        if type(p) is np.ndarray and p.size <= _PYTHON_BELOW:
            rows = p.tolist()
            if type(rows) is list and len(rows) == 1:
                row = rows[0]
                if type(row) is list and row and type(row[0]) is float:
                    least = max(row)
                    total = sum(row)
                    if self.scores == "logits":
                        # softmax's top probability: 1 / sum(exp(v - max)); finite rows only
                        if total == total and -math.inf < total < math.inf:
                            return 1.0 / sum([math.exp(v - least) for v in row])
                    elif total == total and least > 0.0:
                        return least if least < 1.0 else 1.0
        scores = self.confidence(outputs)
        return float(scores.min()) if scores.size else 0.0


class Margin(EscalationRule):
    """Top-1 minus top-2 probability: small when two classes compete."""

    name = "margin"
    expects = "class probabilities [rows, classes >= 2]"

    def confidence(self, outputs: Outputs) -> np.ndarray:
        p = self.tensor(outputs, min_columns=2)
        if p.shape[1] == 2:
            margin = np.abs(p[:, 0] - p[:, 1])
        else:
            top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
            margin = top2[:, 1] - top2[:, 0]
        return _finite_unit(margin.astype(np.float64, copy=False))


class NormalizedEntropy(EscalationRule):
    """``1 - H(p) / log(K)`` over K classes: 1 for one-hot, 0 for uniform.

    As Sedna's cross-entropy hard-example filter. Negative scores count as 0 and each row is
    normalized to sum to one first; a row with nothing positive has confidence 0.
    """

    name = "entropy"
    expects = "class probabilities [rows, classes >= 2]"

    def confidence(self, outputs: Outputs) -> np.ndarray:
        p = np.maximum(self.tensor(outputs, min_columns=2), 0.0, dtype=np.float64)
        total = p.sum(axis=1, keepdims=True)
        valid = np.isfinite(total) & (total > 0.0)
        p = np.divide(p, total, out=np.zeros_like(p), where=valid)
        log_p = np.log(p, out=np.zeros_like(p), where=p > 0.0)
        entropy = -(p * log_p).sum(axis=1)
        conf = 1.0 - entropy / np.log(p.shape[1])
        return _finite_unit(np.where(valid[:, 0], conf, 0.0))


class DetectorScore(EscalationRule):
    """Mean score of a detector's boxes, per row of ``scores [rows, boxes]``.

    Boxes scoring 0 or less (padding) and NaN are ignored; a row with no box has
    confidence 0, so an empty detection escalates.
    """

    name = "detector"
    expects = "per-box scores [rows, boxes]"

    def __init__(self, output: str | None = None, scores: ScoreKind = "probabilities") -> None:
        if scores != "probabilities":
            raise ConfigError("scores", "'probabilities' for rule 'detector' (box scores)", scores)
        super().__init__(output or "scores", scores)

    def confidence(self, outputs: Outputs) -> np.ndarray:
        scores = self.tensor(outputs).astype(np.float64)
        real = scores > 0.0  # False for NaN too
        count = real.sum(axis=1)
        total = np.where(real, scores, 0.0).sum(axis=1)
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        return _finite_unit(mean)


class CallableRule(EscalationRule):
    """Any callable ``outputs -> per-row confidence`` as a rule; its answer is checked:
    one finite value in [0, 1] per row (rows = the first dimension of the outputs)."""

    name = "callable"
    expects = "whatever the callable reads"

    def __init__(self, fn: Callable[[Outputs], Any], name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError("fn", "a callable outputs -> per-row confidence", fn)
        super().__init__("*")
        self.fn = fn
        self._label = name or str(getattr(fn, "__name__", type(fn).__name__))

    @property
    def label(self) -> str:
        return self._label

    def confidence(self, outputs: Outputs) -> np.ndarray:
        where = f"confidence of rule {self.label!r}"
        try:
            values = np.asarray(self.fn(outputs), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(where, "numbers, one per row", str(exc)) from exc
        if values.ndim == 0:
            values = values.reshape(1)
        rows = next((np.shape(a)[0] for a in outputs.values() if np.ndim(a) >= 1), None)
        if values.ndim != 1 or (rows is not None and values.shape[0] != rows):
            want = "a 1-D array" + ("" if rows is None else f" of {rows} values (one per row)")
            raise ConfigError(where, want, f"shape {list(values.shape)}")
        bad = ~((values >= 0.0) & (values <= 1.0))  # NaN fails both comparisons
        if bad.any():
            raise ConfigError(where, "values in [0, 1]", float(values[bad][0]))
        return values

    def __repr__(self) -> str:
        return f"CallableRule({self.label!r})"


#: Rules by the name config uses.
RULES: dict[str, type[EscalationRule]] = {
    "max_prob": MaxProbability,
    "margin": Margin,
    "entropy": NormalizedEntropy,
    "detector": DetectorScore,
}


def make_rule(
    rule: str | EscalationRule | Callable[[Outputs], Any], **options: Any
) -> EscalationRule:
    """A rule from its registry name (``options`` go to its constructor, e.g. ``output=``),
    a callable (``options`` may give ``name=``), or a rule instance (returned as is)."""
    if isinstance(rule, EscalationRule):
        if options:
            raise ConfigError("options", "none when a rule instance is given", sorted(options))
        return rule
    if isinstance(rule, str):
        cls = RULES.get(rule)
        if cls is None:
            raise ConfigError("rule", f"one of {', '.join(sorted(RULES))} or a callable", rule)
        factory: Callable[..., EscalationRule] = cls
    elif callable(rule):
        factory = CallableRule
        options = {"fn": rule, **options}
    else:
        raise ConfigError("rule", f"one of {', '.join(sorted(RULES))} or a callable", rule)
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError("options", f"options accepted by rule {rule!r}", str(exc)) from exc
