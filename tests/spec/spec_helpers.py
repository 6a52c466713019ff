"""Helpers for spec tests: examples as dicts, written back as broken variants."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tierwise.errors import SpecProblem
from tierwise.spec import validate_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

Edit = Callable[[dict[str, Any]], object]


def example_data(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


class Broken:
    """Writes an edited copy of an example to tmp_path and validates it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def write(self, example: str, edit: Edit, filename: str = "fleet.yaml") -> Path:
        data = copy.deepcopy(example_data(example))
        edit(data)
        path = self.tmp_path / filename
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    def text(self, text: str, filename: str = "fleet.yaml") -> Path:
        path = self.tmp_path / filename
        path.write_text(text, encoding="utf-8")
        return path

    def problems(self, example: str, edit: Edit) -> list[SpecProblem]:
        return validate_files([self.write(example, edit)])
