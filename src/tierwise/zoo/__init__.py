"""The model family: tiny (device), small (edge) and large (cloud) digit classifiers.

``build_zoo(out_dir, seed=...)`` trains them on scikit-learn's bundled 8x8 digits made
harder with seeded corruptions, exports each to ONNX with an int8 variant, and writes a
model repository with ``zoo.json`` (accuracy, size, sha256, signature per variant) and
``eval.npz`` (the held-out split). The same seed gives byte-identical files.
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

__all__ = [
    "BUILDER_VERSION",
    "ZOO_SIGNATURE",
    "Zoo",
    "ZooVariant",
    "build_zoo",
    "corrupt",
    "load_eval",
    "load_zoo",
    "variant_path",
    "zoo_is_current",
]
