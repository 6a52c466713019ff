"""Reading a YAML document for validation: the text, its top-level mapping, the line of
every field, and a collector of problems that names file, field path and line.

The fleet spec's loader (:mod:`tierwise.spec.load`) and the plan's
(:mod:`tierwise.planfile.load`) both read their files through these, so both report
problems the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tierwise.errors import ConfigError, SpecProblem
from tierwise.spec.messages import Loc, describe, format_path
from tierwise.yaml_limits import check_expansion

__all__ = ["Collector", "parse_yaml", "read_text", "split_path"]


class _Loader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _line_map(
    node: yaml.Node | None, loc: Loc = (), out: dict[Loc, int] | None = None
) -> dict[Loc, int]:
    """The 1-based line of every key and list item, by path."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                sub = (*loc, key_node.value)
                out[sub] = key_node.start_mark.line + 1
                _line_map(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*loc, i)] = item.start_mark.line + 1
            _line_map(item, (*loc, i), out)
    return out


def split_path(path: str) -> Loc:
    """``'workloads.w.tiers[1]'`` -> ``('workloads', 'w', 'tiers', 1)``."""
    parts: list[str | int] = []
    for piece in path.split("."):
        name, *indices = piece.split("[")
        parts.append(name)
        parts.extend(int(i.rstrip("]")) for i in indices)
    return tuple(parts)


class Collector:
    """Gathers problems for one file, adding the line of the nearest known path.

    ``lines`` maps field paths to 1-based lines; :func:`parse_yaml` fills it.
    """

    def __init__(self, file: str, lines: Mapping[Loc, int]) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[SpecProblem] = []

    def add(self, loc: Loc, message: str) -> None:
        """A problem at the field path ``loc``."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                message = f"{message} (line {line})"
                break
        self.problems.append(SpecProblem(self.file, format_path(loc), message))

    def add_path(self, path: str, message: str) -> None:
        """A problem at a dotted field path such as ``workloads.w.tiers[1]``."""
        self.add(split_path(path), message)


def parse_yaml(text: str, out: Collector, top: str) -> dict[Any, Any] | None:
    """The document's top-level mapping (``top`` says what it should hold), or None with
    the problem added to ``out``; fills ``out.lines`` with the line of every field."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            out.add((), f"the file is empty; expected {top}")
            return None
        check_expansion(node, "the file")
        data = loader.construct_document(node)
    except ConfigError as exc:
        out.add((), f"expected {exc.expected}")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        what = exc.problem or exc.context or "syntax error"
        out.add((), f"invalid YAML{where}: {what}")
        return None
    except yaml.YAMLError as exc:
        out.add((), f"invalid YAML: {exc}")
        return None
    finally:
        loader.dispose()
    out.lines = _line_map(node)
    if not isinstance(data, dict):
        out.add((), f"expected {top} at the top, got {describe(data)}")
        return None
    return data


def read_text(path: str | os.PathLike[str]) -> tuple[str | None, SpecProblem | None]:
    """The file's UTF-8 text, or None and the problem that kept it from being read."""
    file = os.fspath(path)
    try:
        return Path(file).read_text(encoding="utf-8"), None
    except FileNotFoundError:
        return None, SpecProblem(file, "", "cannot read the file: no such file")
    except UnicodeDecodeError as exc:
        return None, SpecProblem(file, "", f"cannot read the file: not UTF-8 text ({exc.reason})")
    except OSError as exc:
        return None, SpecProblem(file, "", f"cannot read the file: {exc.strerror or exc}")
