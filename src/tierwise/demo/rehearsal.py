"""What the fidelity check (:mod:`tierwise.demo.fidelity`) reads, loaded once for all its
levels: the demo's plan, its fleet spec with every tier on this machine, the profiles,
the calibration's held-out rows and the held-out inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from tierwise.demo.stages import StoryFiles
from tierwise.errors import ConfigError
from tierwise.plan.perf import ProfileCatalog
from tierwise.planfile.schema import Plan
from tierwise.sim.rows import CalibrationRows
from tierwise.spec import FleetSpec

__all__ = ["Rehearsal"]


@dataclass(frozen=True)
class Rehearsal:
    """What every level reads, loaded once: the plan (as a document and parsed), the
    fleet spec with every tier on this machine (no speed factors: the profiles were
    measured here), the profiles, the calibration's rows and the held-out inputs."""

    doc: dict[str, Any]
    plan: Plan
    spec: FleetSpec
    catalog: ProfileCatalog
    rows: CalibrationRows
    images: np.ndarray

    @staticmethod
    def load(files: StoryFiles) -> Rehearsal:
        from tierwise.bench.profiles import load_profiles
        from tierwise.planfile.load import load_plan
        from tierwise.sim.rows import load_calibration_rows
        from tierwise.spec import load_spec
        from tierwise.zoo import load_eval

        spec = load_spec(files.fleet)
        here = {"speed_factor": None}
        tiers = {
            name: t.model_copy(update={"hardware": t.hardware.model_copy(update=here)})
            for name, t in spec.tiers.items()
        }
        spec = spec.model_copy(update={"tiers": tiers})
        return Rehearsal(
            doc=yaml.safe_load(files.plan.read_text(encoding="utf-8")),
            plan=load_plan(files.plan, check_files=False),
            spec=spec,
            catalog=ProfileCatalog(spec, [load_profiles(files.profiles)]),
            rows=load_calibration_rows(files.calibration),
            images=load_eval(files.zoo)[0],
        )

    @property
    def kind_of(self) -> dict[str, str]:
        return {name: t["kind"] for name, t in self.doc["tiers"].items()}

    def compute_ms(self) -> dict[str, float]:
        """Each plan tier's model time for one row, as profiled on this machine."""
        model = next(iter(self.spec.workloads.values())).model
        out = {}
        for name, tier in self.doc["tiers"].items():
            variant = tier.get("variant") or tier.get("model")
            spec_tier = self.spec.tiers.get(tier.get("spec_tier", name))
            found = self.catalog.estimate(model, str(variant), spec_tier) if spec_tier else None
            if found is None:
                raise ConfigError(
                    f"tiers.{name}", "a profiled variant on a tier of the spec", variant
                )
            out[name] = found.single.p50_ms
        return out

    def through_every_stage(self, workloads: list[str]) -> dict[str, int]:
        """A held-out row per workload that every stage of its cascade passes on."""
        from tierwise.sim.rows import workload_rows

        out = {}
        for name in workloads:
            outcomes = workload_rows(self.plan, name, self.rows)
            if outcomes is None:
                continue
            passed = np.flatnonzero(outcomes.escalates[:, :-1].all(axis=1))
            out[name] = int(passed[0]) if passed.size else 0
        return out
