"""Corruptions, the split, and the byte-stable npz writer."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tierwise.errors import ConfigError
from tierwise.zoo import corrupt
from tierwise.zoo.data import load_splits
from tierwise.zoo.files import read_npz, write_npz


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    from sklearn.datasets import load_digits

    images = np.asarray(load_digits().images[:200], dtype=np.float64)
    return (images / 16.0).astype(np.float32)


def test_corrupt_is_deterministic_for_a_seed(clean: np.ndarray) -> None:
    a = corrupt(clean, np.random.default_rng(7))
    b = corrupt(clean, np.random.default_rng(7))
    c = corrupt(clean, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_corrupt_changes_images_and_keeps_the_format(clean: np.ndarray) -> None:
    before = clean.copy()
    out = corrupt(clean, np.random.default_rng(0))
    np.testing.assert_array_equal(clean, before)  # input untouched
    assert out.dtype == np.float32
    assert out.shape == clean.shape
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    changed = np.abs(out - clean).reshape(len(clean), -1).max(axis=1) > 0.05
    assert changed.all()
    assert np.abs(out - clean).mean() > 0.03


def test_severity_scales_the_damage(clean: np.ndarray) -> None:
    def damage(severity: float) -> float:
        out = corrupt(clean, np.random.default_rng(3), severity=severity)
        return float(np.abs(out - clean).mean())

    assert damage(0) == 0.0
    assert damage(0.5) < damage(1.0) < damage(2.0) < damage(4.0)


def test_corrupt_empty_batch(clean: np.ndarray) -> None:
    assert corrupt(clean[:0], np.random.default_rng(0)).shape == (0, 8, 8)


@pytest.mark.parametrize(
    ("images", "rng", "severity", "parameter"),
    [
        (np.zeros((8, 8), np.float32), np.random.default_rng(0), 1.0, "images"),
        (np.zeros((2, 8, 8), np.int64), np.random.default_rng(0), 1.0, "images"),
        ([[[0.0]]], np.random.default_rng(0), 1.0, "images"),
        (np.zeros((2, 8, 8), np.float32), 0, 1.0, "rng"),
        (np.zeros((2, 8, 8), np.float32), np.random.default_rng(0), -0.1, "severity"),
        (np.zeros((2, 8, 8), np.float32), np.random.default_rng(0), float("nan"), "severity"),
        (np.zeros((2, 8, 8), np.float32), np.random.default_rng(0), "high", "severity"),
    ],
)
def test_corrupt_rejects_bad_arguments(
    images: object, rng: object, severity: object, parameter: str
) -> None:
    with pytest.raises(ConfigError, match=parameter):
        corrupt(images, rng, severity=severity)  # type: ignore[arg-type]


def test_split_is_disjoint_stratified_and_seeded() -> None:
    splits = load_splits(np.random.default_rng(5))
    assert not set(splits.train_index.tolist()) & set(splits.eval_index.tolist())
    assert len(splits.train_index) + len(splits.eval_index) == 1797
    assert len(splits.eval_y) == 3 * len(splits.eval_index)
    counts = np.bincount(splits.eval_y, minlength=10) / 3
    assert counts.min() >= 50  # about 30% of each class's ~180 images
    again = load_splits(np.random.default_rng(5))
    np.testing.assert_array_equal(splits.eval_x, again.eval_x)
    np.testing.assert_array_equal(splits.train_index, again.train_index)
    other = load_splits(np.random.default_rng(6))
    assert not np.array_equal(splits.eval_index, other.eval_index)


def test_npz_bytes_do_not_depend_on_time(tmp_path: Path) -> None:
    arrays: dict[str, np.ndarray] = {
        "y": np.arange(5, dtype=np.int64),
        "x": np.ones((5, 8, 8), np.float32),
    }
    write_npz(tmp_path / "a.npz", arrays)
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert [i.date_time for i in archive.infolist()] == [(1980, 1, 1, 0, 0, 0)] * 2
    loaded = read_npz(tmp_path / "a.npz")
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype
