"""The demo as one story: zoo -> profile -> calibrate -> plan -> tier servers -> replay
through the Client -> a simulated day (and, asked, the simulator checked against the live
fleet) -> report.

Each step writes its output under ``work_dir`` and is keyed by its inputs
(:mod:`tierwise.demo.steps`): a second run skips the zoo while it is current, and the
profile, calibration and plan while their settings and input files are unchanged. The
tier servers, the replay and the report always run: they are the live part.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from tierwise.demo import stages
from tierwise.demo.fleet import MAIN_WORKLOAD, write_fleet
from tierwise.demo.replay import ReplaySummary
from tierwise.demo.report import demo_report_data
from tierwise.demo.settings import DemoSettings
from tierwise.demo.simulation import check_fidelity, simulate_day
from tierwise.demo.steps import StepCache
from tierwise.report import ReportData, ReportFiles, write_report
from tierwise.report.simulation import load_simulation

__all__ = ["DemoSettings", "NullProgress", "StepRecord", "StoryProgress", "StoryResult", "run"]


class StoryProgress(Protocol):
    """What the demo reports while it runs (the CLI draws progress bars from it)."""

    def begin(self, step: str, description: str, total: int | None) -> None: ...

    def advance(self, step: str, amount: int = 1) -> None: ...

    def end(self, step: str, outcome: str) -> None: ...


class NullProgress:
    """Reports nothing."""

    def begin(self, step: str, description: str, total: int | None) -> None:
        return None

    def advance(self, step: str, amount: int = 1) -> None:
        return None

    def end(self, step: str, outcome: str) -> None:
        return None


@dataclass(frozen=True)
class StepRecord:
    """One step: whether it ran or was cached, how long it took, and what it made."""

    step: str
    outcome: str  # "ran" | "cached"
    seconds: float
    output: str


@dataclass
class StoryResult:
    """What the demo did and found."""

    steps: list[StepRecord] = field(default_factory=list)
    replay: list[ReplaySummary] = field(default_factory=list)
    plan: Path | None = None
    live_plan: Path | None = None
    report: ReportFiles | None = None
    data: ReportData | None = None
    fidelity: dict[str, Any] | None = None  # the fidelity check's document, when it ran

    def to_dict(self) -> dict[str, Any]:
        summary = self.data.summary if self.data is not None else None
        return {
            "steps": [vars(s) for s in self.steps],
            "replay": [r.to_dict() for r in self.replay],
            "plan": None if self.plan is None else str(self.plan),
            "live_plan": None if self.live_plan is None else str(self.live_plan),
            "report": None if self.report is None else str(self.report.page),
            "fidelity": self.fidelity,
            "summary": None
            if summary is None
            else {"title": summary.title, "columns": list(summary.columns),
                  "rows": [list(r) for r in summary.rows]},
        }  # fmt: skip


class _Recorder:
    def __init__(self, result: StoryResult, progress: StoryProgress) -> None:
        self.result, self.progress = result, progress

    @contextmanager
    def step(
        self, name: str, description: str, total: int | None, output: Path
    ) -> Iterator[list[str]]:
        """Time a step; the body appends ``"cached"`` to the yielded list when it skipped."""
        started = time.monotonic()
        self.progress.begin(name, description, total)
        outcome: list[str] = []
        yield outcome
        status = outcome[0] if outcome else "ran"
        self.progress.end(name, status)
        record = StepRecord(name, status, time.monotonic() - started, str(output))
        self.result.steps.append(record)


def run(settings: DemoSettings, progress: StoryProgress | None = None) -> StoryResult:
    """Run the whole story; see the module docs."""
    show = progress or NullProgress()
    result = StoryResult()
    rec = _Recorder(result, show)
    work, zoo = settings.work_dir, settings.zoo_dir
    work.mkdir(parents=True, exist_ok=True)
    cache = StepCache(work / "steps.json")
    fleet = write_fleet(work / "fleet.yaml")
    files = stages.StoryFiles.under(work, zoo, fleet)

    with rec.step("zoo", "building the model family", None, zoo) as outcome:
        if not stages.build_zoo(settings, force=settings.force):
            outcome.append("cached")
    with rec.step("profile", "profiling every variant", stages.variant_count(zoo),
                  files.profiles) as outcome:  # fmt: skip
        if not stages.profile(settings, files, cache, advance=partial(show.advance, "profile")):
            outcome.append("cached")
    with rec.step("calibrate", "calibrating the cascade", None, files.calibration) as outcome:
        if not stages.calibrate(settings, files, cache):
            outcome.append("cached")
    with rec.step("plan", "placing the workloads", None, files.plan) as outcome:
        if not stages.plan(settings, files, cache):
            outcome.append("cached")
    result.plan = files.plan

    replayed = stages.replay_workloads(files)
    rows = settings.requests or stages.eval_rows(zoo)
    with ExitStack() as servers:
        with rec.step("tiers", "starting the edge and cloud tiers", None, files.live_plan):
            result.live_plan = servers.enter_context(stages.live_tiers(settings, files))
        with rec.step("replay", "replaying through tierwise.Client",
                      rows * len(replayed), files.live_plan):  # fmt: skip
            result.replay = stages.replay_all(
                settings, files, replayed, step=lambda: show.advance("replay")
            )

    with rec.step("simulate", "simulating a bad day", None, files.work / "simulation.json"):
        simulated = simulate_day(settings, files)
    checked = None
    if settings.fidelity:
        with rec.step("fidelity", "checking the simulator against the live fleet", None,
                      files.work / "fidelity.json"):  # fmt: skip
            checked, result.fidelity = check_fidelity(settings, files)
    with rec.step("report", "writing the report", None, files.report_dir):
        result.data = demo_report_data(
            files, result.replay, main_workload=MAIN_WORKLOAD, requests=rows,
            network=settings.network, simulation=load_simulation(simulated, checked),
        )  # fmt: skip
        result.report = write_report(result.data, files.report_dir)
    return result
