"""Escalation rules: how sure a tier's answer is, from its outputs.

The router asks a stage's rule whether to escalate; the calibrator sweeps thresholds of
the same rules; the plan file names them (:data:`RULES`)."""

from __future__ import annotations

from tierwise.escalation.rules import (
    RULES,
    SCORE_KINDS,
    CallableRule,
    DetectorScore,
    EscalationRule,
    Margin,
    MaxProbability,
    NormalizedEntropy,
    Outputs,
    ScoreKind,
    make_rule,
    pick_score_output,
    softmax,
)

__all__ = [
    "RULES",
    "SCORE_KINDS",
    "CallableRule",
    "DetectorScore",
    "EscalationRule",
    "Margin",
    "MaxProbability",
    "NormalizedEntropy",
    "Outputs",
    "ScoreKind",
    "make_rule",
    "pick_score_output",
    "softmax",
]
