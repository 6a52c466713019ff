"""Calibration: thresholds and costs measured on evaluation data.

:mod:`~tierwise.calibrate.sweep` sweeps each escalation rule's threshold over a model's
outputs (:func:`calibrate`), :mod:`~tierwise.calibrate.run` runs a plan's stages on a
user's data (in process or over V2) to get those outputs, :mod:`~tierwise.calibrate.data`
reads the data, :mod:`~tierwise.calibrate.costs` prices each tier from a fleet spec, and
:mod:`~tierwise.calibrate.result` holds what a sweep found."""

from __future__ import annotations

from tierwise.calibrate.costs import (
    spec_usd_per_inference,
)
from tierwise.calibrate.data import (
    EvalData,
    load_eval_data,
)
from tierwise.calibrate.result import (
    CalibrationResult,
    RuleCalibration,
)
from tierwise.calibrate.run import (
    calibrate_stages,
)
from tierwise.calibrate.sweep import (
    DEFAULT_RULES,
    calibrate,
    calibrate_outputs,
)

__all__ = [
    "DEFAULT_RULES",
    "CalibrationResult",
    "EvalData",
    "RuleCalibration",
    "calibrate",
    "calibrate_outputs",
    "calibrate_stages",
    "load_eval_data",
    "spec_usd_per_inference",
]
