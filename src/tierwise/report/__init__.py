"""The one-page report of a plan: what was decided, what it costs, how fast it is, and how
the cascade trades accuracy for cost.

:class:`ReportData` is the typed input (:mod:`tierwise.report.data`);
:mod:`tierwise.report.plots` draws its four PNG plots (decision-matrix heatmap, cost per
1M inferences by workload and tier, latency percentiles against SLOs, the cascade's
accuracy / cost curve with the chosen points and the oracle bound), and
:func:`write_report` writes them with a self-contained HTML page into a folder.
"""

from tierwise.report.calibration import (
    cascade_from_calibration,
    choose_on_curve,
    load_calibration_json,
)
from tierwise.report.data import (
    CascadeCurve,
    CascadeData,
    ChosenPoint,
    CurvePoint,
    DecisionMatrix,
    LatencyRow,
    MatrixRow,
    ReportData,
    SummaryTable,
    WorkloadCost,
)
from tierwise.report.page import PAGE_NAME, SECTIONS, ReportFiles, render_page, write_report
from tierwise.report.plots import cascade_png, cost_png, latency_png, matrix_png

__all__ = [
    "PAGE_NAME",
    "SECTIONS",
    "CascadeCurve",
    "CascadeData",
    "ChosenPoint",
    "CurvePoint",
    "DecisionMatrix",
    "LatencyRow",
    "MatrixRow",
    "ReportData",
    "ReportFiles",
    "SummaryTable",
    "WorkloadCost",
    "cascade_from_calibration",
    "cascade_png",
    "choose_on_curve",
    "cost_png",
    "latency_png",
    "load_calibration_json",
    "matrix_png",
    "render_page",
    "write_report",
]
