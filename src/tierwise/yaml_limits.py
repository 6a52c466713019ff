"""YAML that cannot explode: aliases are checked before anything is built from them.

An anchor named again and again (the "billion laughs") costs a few bytes of text and
expands to billions of nodes for whatever walks the result, and an alias inside the
node it names makes a structure that contains itself. :func:`load_yaml` composes the
document, refuses either case with a ConfigError naming what was read, and only then
constructs Python objects (safe types only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tierwise.errors import ConfigError

__all__ = ["MAX_YAML_NODES", "check_expansion", "load_settings_file", "load_yaml"]

#: Most nodes a document may hold once every alias is expanded.
MAX_YAML_NODES = 1_000_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(node: yaml.Node, what: str, max_nodes: int = MAX_YAML_NODES) -> None:
    """ConfigError when ``node`` expands past ``max_nodes`` nodes or holds an alias to a
    node that contains it. Walks each shared node once (no recursion, no blow-up)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, finished = stack.pop()
        key = id(current)
        if finished:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(current))
            if total > max_nodes:
                raise ConfigError(
                    what, f"YAML of at most {max_nodes:,} nodes once its aliases are expanded"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((current, True))
        for child in _children(current):
            if id(child) in open_nodes:
                raise ConfigError(
                    what, "YAML without an alias inside the node it names (a recursive alias)"
                )
            if id(child) not in sizes:
                stack.append((child, False))


def load_yaml(text: str | bytes, what: str, max_nodes: int = MAX_YAML_NODES) -> Any:
    """The document in ``text`` (None when empty), checked by :func:`check_expansion`.
    yaml.YAMLError still reports malformed YAML."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node, what, max_nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_settings_file(path: Path) -> dict[str, Any]:
    """The settings in the YAML file at ``path`` (empty when the file is): a mapping at the
    top level. ConfigError names the file when it cannot be read, is not YAML or holds
    something else."""
    source = str(path)
    try:
        loaded = load_yaml(path.read_text(), source) or {}
    except FileNotFoundError as exc:
        raise ConfigError(source, "a YAML file (there is no such file)") from exc
    except OSError as exc:
        raise ConfigError(source, "a readable YAML file", exc.strerror or str(exc)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(source, "a readable YAML file", str(exc)) from exc
    if not isinstance(loaded, dict):
        raise ConfigError(source, "a mapping of settings at the top level", type(loaded).__name__)
    return loaded
