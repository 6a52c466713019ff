"""The rollout gates as PromQL for Flagger and Argo Rollouts: every query parses
(``promtool check rules``), and ``promtool test rules`` evaluates them on series of a
canary and a baseline pod to the numbers ``tierwise rollout`` would compare."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from binaries import require_binary
from tierwise.control.gates import GATES, Gate
from tierwise.deploy import gate_query
from tierwise.deploy.progressive import FLAGGER_COHORTS

# Flagger's and Argo's template variables, as the engines fill them in
FLAGGER = {"{{ target }}": "reid-cloud", "{{ interval }}": "5m"}
ARGO = {"{{args.name}}": "reid-cloud", "{{args.canary-hash}}": "7c9f8d",
        "{{args.stable-hash}}": "5b6d4c"}  # fmt: skip
ARGO_COHORTS = (
    "{{args.name}}-{{args.canary-hash}}-[0-9a-z]+",
    "{{args.name}}-{{args.stable-hash}}-[0-9a-z]+",
)
CANARY = "reid-cloud-7c9f8d-x1"
BASELINE = "reid-cloud-primary-5b6d4c-y2"


def _fill(query: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        query = query.replace(key, value)
    assert "{{" not in query, query
    return query


def _flagger(name: str) -> str:
    return _fill(gate_query(Gate(name, GATES[name].default_limit), *FLAGGER_COHORTS,
                            "{{ interval }}"), FLAGGER)  # fmt: skip


def _promtool(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool", "prometheus")
    return subprocess.run(
        [promtool, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _rules(tmp_path: Path, queries: dict[str, str]) -> subprocess.CompletedProcess[str]:
    rules = [{"record": f"gate:{name}", "expr": q} for name, q in sorted(queries.items())]
    (tmp_path / "gates.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]}))
    return _promtool(tmp_path, "check", "rules", "gates.yml")


def test_every_gate_parses_for_both_engines(tmp_path: Path) -> None:
    queries = {}
    for name in GATES:
        gate = Gate(name, GATES[name].default_limit)
        queries[f"flagger_{name}"] = _flagger(name)
        queries[f"argo_{name}"] = _fill(gate_query(gate, *ARGO_COHORTS, "1m"), ARGO)
    result = _rules(tmp_path, queries)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    result = _rules(tmp_path, {"broken": _flagger("p99_ratio").replace(")", "", 1)})
    assert result.returncode != 0


def _series(pod: str, metric: str, per_min: float, **labels: str) -> dict[str, str]:
    shown = ", ".join([f'pod="{pod}"', *(f'{k}="{v}"' for k, v in labels.items())])
    return {"series": f"{metric}{{{shown}}}", "values": f"0+{per_min:g}x20"}


def _expect(name: str, value: float) -> dict[str, Any]:
    return {"expr": _flagger(name), "eval_time": "15m",
            "exp_samples": [{"labels": "{}", "value": value}]}  # fmt: skip


def test_gates_compare_canary_with_baseline(tmp_path: Path) -> None:
    requests = "tierwise_requests_total"
    series = [
        # canary: 10% of its requests fail, 2 J per answered one, agrees 75% of the time
        _series(CANARY, requests, 90, outcome="success"),
        _series(CANARY, requests, 10, outcome="error"),
        _series(CANARY, "tierwise_energy_joules_total", 180),
        _series(CANARY, "tierwise_shadow_checks_total", 3, result="agree"),
        _series(CANARY, "tierwise_shadow_checks_total", 1, result="disagree"),
        # baseline: no failures, 1 J per answer, always agrees
        _series(BASELINE, requests, 100, outcome="success"),
        _series(BASELINE, "tierwise_energy_joules_total", 100),
        _series(BASELINE, "tierwise_shadow_checks_total", 10, result="agree"),
    ]
    tests = [{
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            _expect("error_rate_delta", 0.1),
            _expect("energy_ratio", 2.0),
            _expect("agreement_delta", -0.25),
            # no router series on either side: the neutral value, so the gate passes
            _expect("fallback_delta", 0.0),
        ],
    }]  # fmt: skip
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": []}))
    doc = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(doc))
    result = _promtool(tmp_path, "test", "rules", "tests.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(GATES))
def test_queries_name_the_series_the_control_plane_reads(name: str) -> None:
    query = _flagger(name)
    assert 'pod=~"reid-cloud-primary-' in query
    assert query.endswith("or vector(1)" if GATES[name].compare == "ratio" else "or vector(0)")
