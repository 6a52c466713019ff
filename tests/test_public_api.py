"""Every package lists its public names in ``__all__``, and every listed name exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tierwise

PACKAGES = [
    "tierwise",
    *sorted(m.name for m in pkgutil.walk_packages(tierwise.__path__, "tierwise.") if m.ispkg),
]


def test_expected_packages_exist() -> None:
    for name in (
        "tierwise.spec",
        "tierwise.plan",
        "tierwise.zoo",
        "tierwise.runtime",
        "tierwise.protocol",
        "tierwise.cli",
        "tierwise.bench",
    ):
        assert name in PACKAGES


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_declared_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__ list"
    assert exported, f"{name}.__all__ is empty"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"


def test_errors_module_lists_one_tree() -> None:
    from tierwise import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.TierwiseError), name
            assert name in (errors.__doc__ or ""), f"{name} missing from the drawn hierarchy"
