"""Rollouts and audit entries as lines a person reads (``tierwise rollout status``,
``tierwise control audit``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["audit_lines", "rollout_lines"]


def _when(at_s: float | None) -> str:
    if at_s is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at_s)) + "Z"


def rollout_lines(doc: Mapping[str, Any]) -> list[str]:
    """A rollout's state, stage, cohort and last analysis."""
    request = doc["request"]
    stages = ",".join(str(s) for s in request["stages"])
    lines = [
        f"rollout {doc['id']}: {doc['bundle']}:{doc['version']} ({doc['digest'][:19]}) "
        f"{doc['state'].upper()}",
        f"  selector {request['selector'] or '(all nodes)'}; stages {stages}; now "
        f"{doc['stage_name']} with {len(doc['cohort'])} of {len(doc['baseline'])} node(s); "
        f"threshold {request['threshold']}",
    ]
    if doc.get("reason"):
        lines.append(f"  reason: {doc['reason']}")
    analysis = doc.get("last_analysis")
    if analysis:
        lines.append(
            f"  last analysis {_when(analysis.get('at_s'))} ({analysis.get('stage')}, "
            f"window {analysis.get('window_s')} s, compared with {analysis.get('compared_with')}):"
        )
        for result in analysis.get("results", []):
            lines.append(f"    {result.get('verdict', '?'):<8} {result.get('text', '')}")
    return lines


def audit_lines(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per audit entry: when, who, what, and the gist of its evidence."""
    lines = []
    for entry in entries:
        detail = entry.get("detail") or {}
        gist = [
            f"{k}={detail[k]}"
            for k in ("bundle", "version", "stage", "verdict", "added")
            if detail.get(k) not in (None, [], "")
        ]
        if detail.get("reason"):
            gist.append(f"reason={detail['reason']}")
        lines.append(
            f"{entry.get('seq', '-'):>5} {_when(entry.get('at_s'))} {entry.get('actor', '-'):<10} "
            f"{entry.get('action', '-'):<18} {entry.get('rollout') or '-'} {' '.join(gist)}"
        )
    return lines
