"""Seeded detection and false-alarm rates: the zoo's traffic shifted (corruption severity
raised, class mix swapped) is flagged within 500 rows; unshifted traffic rarely alerts.
Also a model the zoo did not make, with a reference from ``reference_for_model``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from score_models import image_classifier, images, logits_of
from tierwise.errors import ConfigError
from tierwise.telemetry.drift import DriftMonitor, DriftSettings, Reference
from tierwise.zoo import (
    SHIFTS,
    Shift,
    detection_trial,
    drift_stream,
    false_alarm_share,
    load_zoo,
    reference_for_model,
)

SEEDS = range(40)
VARIANT = "small"


@pytest.mark.parametrize("shift", ["severity", "class_mix"])
def test_injected_shift_is_flagged_within_500_rows(shared_zoo_dir: Path, shift: str) -> None:
    zoo = load_zoo(shared_zoo_dir)
    found = [detection_trial(zoo, VARIANT, seed=s, shift=shift) for s in SEEDS]
    caught = [rows for rows in found if rows is not None]
    assert len(caught) / len(found) >= 0.95, found
    assert max(caught) <= 500


def test_unshifted_traffic_rarely_alerts(shared_zoo_dir: Path) -> None:
    zoo = load_zoo(shared_zoo_dir)
    counts = [false_alarm_share(zoo, VARIANT, seed=100 + s, rows=1500) for s in SEEDS]
    alerts = sum(a for a, _ in counts)
    windows = sum(w for _, w in counts)
    assert windows == len(SEEDS) * ((1500 - 250) // 50 + 1)
    assert alerts / windows <= 0.01, (alerts, windows)


def test_int8_variant_flags_a_severity_raise(shared_zoo_dir: Path) -> None:
    zoo = load_zoo(shared_zoo_dir)
    found = [detection_trial(zoo, "tiny-int8", seed=s, shift=Shift(severity=2.5)) for s in range(5)]
    assert all(rows is not None and rows <= 500 for rows in found)
    assert SHIFTS["severity"] == Shift(severity=2.5)
    with pytest.raises(ConfigError, match="shift"):
        detection_trial(zoo, "tiny", seed=0, shift="sideways")


def test_unshifted_stream_matches_the_eval_split(shared_zoo_dir: Path) -> None:
    zoo = load_zoo(shared_zoo_dir)
    x, y = drift_stream(zoo, rows=3000, seed=1)
    assert x.shape == (3000, 8, 8)
    assert x.dtype == np.float32
    shares = np.bincount(y, minlength=10) / y.size
    assert np.all(np.abs(shares - 0.1) < 0.03)
    _, mixed = drift_stream(zoo, rows=500, seed=1, class_mix={0: 1.0, 1: 1.0, 2: 1.0})
    assert set(mixed.tolist()) <= {0, 1, 2}
    harder, _ = drift_stream(zoo, rows=3000, seed=1, severity=2.5)
    assert float(np.abs(harder - x).mean()) > 0.01
    for bad in ({"rows": 0}, {"rows": 10, "class_mix": [1.0] * 3}, {"rows": 10, "seed": -1}):
        with pytest.raises(ConfigError):
            drift_stream(zoo, **{"seed": 0, **bad})  # type: ignore[arg-type]


def test_reference_for_a_logits_model_the_zoo_did_not_make(tmp_path: Path) -> None:
    model = image_classifier(tmp_path / "ocr.onnx", logits=True, height=8, width=16)
    x = images(600, height=8, width=16, seed=0)
    ref = reference_for_model(model, x)
    assert ref.output == "save_infer_model/scale_0.tmp_1"
    assert ref.score_kind == "logits"
    assert ref.input_name == "x"
    assert ref.classes == 2
    assert ref.rows == 600
    expected = np.bincount(logits_of(x).argmax(axis=1), minlength=2)
    assert list(ref.class_counts) == expected.tolist()
    ref.save(tmp_path / "reference.json")
    ref = Reference.load(tmp_path / "reference.json")

    def window(data: np.ndarray) -> DriftMonitor:
        monitor = DriftMonitor(ref, DriftSettings(window_rows=200))
        outputs = {ref.output or "": logits_of(data).astype(np.float32)}
        monitor.observe({"x": data}, outputs)
        return monitor

    quiet = [window(images(200, height=8, width=16, seed=s)).level() for s in range(1, 21)]
    assert quiet.count(2) <= 1
    brighter = images(200, height=8, width=16, seed=50) + 0.7
    assert window(brighter).level() == 2
    fresh = images(2000, height=8, width=16, seed=51)
    one_class = fresh[logits_of(fresh).argmax(axis=1) == 1][:200]
    assert window(one_class).level() == 2
    assert window(one_class).scores()["class", "psi"] > 0.2


def test_reference_for_model_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    model = image_classifier(tmp_path / "two.onnx", height=8, width=16, second_output="logits_copy")
    x = images(10, height=8, width=16)
    with pytest.raises(ConfigError, match="output"):
        reference_for_model(model, x)  # two float [rows, 2] outputs: say which
    assert reference_for_model(model, x, output="logits_copy").score_kind == "logits"
    with pytest.raises(ConfigError, match="output"):
        reference_for_model(model, x, output="nope")
    with pytest.raises(ConfigError, match="inputs"):
        reference_for_model(model, images(10, height=9, width=16), output="logits_copy")
    with pytest.raises(ConfigError, match="model_path"):
        reference_for_model(tmp_path / "missing.onnx", x)
