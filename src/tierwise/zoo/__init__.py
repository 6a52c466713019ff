"""The model family: tiny (device), small (edge) and large (cloud) digit classifiers.

``build_zoo(out_dir, seed=...)`` trains them on scikit-learn's bundled 8x8 digits made
harder with seeded corruptions, exports each to ONNX with an int8 variant, and writes a
model repository with ``zoo.json`` (accuracy, size, sha256, signature per variant) and
``eval.npz`` (the held-out split), and beside each model its drift reference
(``reference.json``, :func:`reference_for_model` builds one for any ONNX model). The same
seed gives byte-identical files. :func:`drift_stream` draws traffic like the held-out
split, or shifted from it; :func:`detection_trial` and :func:`false_alarm_share` measure
a variant's drift monitor on such traffic.
"""

from tierwise.zoo.build import ZOO_SIGNATURE, build_zoo, variant_path
from tierwise.zoo.data import corrupt
from tierwise.zoo.manifest import (
    BUILDER_VERSION,
    Zoo,
    ZooVariant,
    load_eval,
    load_zoo,
    zoo_is_current,
)
from tierwise.zoo.reference import reference_for_model, reference_path
from tierwise.zoo.stream import SHIFTS, Shift, detection_trial, drift_stream, false_alarm_share

__all__ = [
    "BUILDER_VERSION",
    "SHIFTS",
    "ZOO_SIGNATURE",
    "Zoo",
    "Shift",
    "ZooVariant",
    "build_zoo",
    "corrupt",
    "detection_trial",
    "drift_stream",
    "false_alarm_share",
    "load_eval",
    "load_zoo",
    "reference_for_model",
    "reference_path",
    "variant_path",
    "zoo_is_current",
]
