"""Train the three classifiers of the family with scikit-learn and keep only their weights.

Each model becomes a :class:`DenseNet`: a chain of ``x @ W (+ b) (ReLU)`` layers ending in
logits, which :mod:`tierwise.zoo.export` turns into an ONNX graph. The tiny model first
averages 2x2 pixel blocks (a fixed, bias-free layer), so it sees a 4x4 image, as a cheap
device sensor pipeline would.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from tierwise.errors import ZooError
from tierwise.zoo.data import IMAGE_SHAPE, NUM_CLASSES, Splits, augment
from tierwise.zoo.manifest import Tier

__all__ = ["RECIPES", "DenseLayer", "DenseNet", "Recipe", "pooling_matrix", "train_model"]


@dataclass(frozen=True)
class DenseLayer:
    """``y = x @ weight (+ bias)``, then ReLU when ``relu``."""

    weight: np.ndarray  # float32 [in, out]
    bias: np.ndarray | None  # float32 [out]
    relu: bool


@dataclass(frozen=True)
class DenseNet:
    """A trained model as plain weights: flattened 8x8 input -> layers -> logits."""

    layers: tuple[DenseLayer, ...]

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Reference forward pass in numpy (used to check the exported graph)."""
        x = images.reshape(len(images), -1).astype(np.float32)
        for layer in self.layers:
            x = x @ layer.weight
            if layer.bias is not None:
                x = x + layer.bias
            if layer.relu:
                x = np.maximum(x, 0.0)
        return x

    @property
    def parameter_count(self) -> int:
        return sum(
            layer.weight.size + (0 if layer.bias is None else layer.bias.size)
            for layer in self.layers
        )


@dataclass(frozen=True)
class Recipe:
    """How one family member is trained: model kind, width and how much augmented data."""

    name: str
    tier: Tier
    kind: str  # "logistic" (on pooled 4x4 input) or "mlp"
    hidden: tuple[int, ...]
    train_copies: int  # corrupted copies of each training image
    max_epochs: int
    description: str


#: The family, weakest first: a clear accuracy ladder (about 87 / 92 / 93 % on the
#: corrupted held-out split) whose smaller members are sure of themselves often enough
#: that a calibrated cascade answers most requests below the cloud.
RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="tiny",
        tier="device",
        kind="mlp",
        hidden=(12,),
        train_copies=8,
        max_epochs=200,
        description="MLP, one hidden layer of 12 ReLU units, on the 8x8 image",
    ),
    Recipe(
        name="small",
        tier="edge",
        kind="mlp",
        hidden=(96,),
        train_copies=16,
        max_epochs=50,
        description="MLP, one hidden layer of 96 ReLU units, on the 8x8 image",
    ),
    Recipe(
        name="large",
        tier="cloud",
        kind="mlp",
        hidden=(256, 128),
        train_copies=16,
        max_epochs=20,
        description="MLP, hidden layers of 256 and 128 ReLU units, on the 8x8 image",
    ),
)


def pooling_matrix() -> np.ndarray:
    """[64, 16] matrix that averages each 2x2 block of a flattened 8x8 image."""
    height, width = IMAGE_SHAPE
    pooled_w = width // 2
    matrix = np.zeros((height * width, (height // 2) * pooled_w), dtype=np.float32)
    for row in range(height):
        for col in range(width):
            matrix[row * width + col, (row // 2) * pooled_w + col // 2] = 0.25
    return matrix


def _fit_logistic(x: np.ndarray, y: np.ndarray, recipe: Recipe) -> DenseNet:
    from sklearn.linear_model import LogisticRegression

    pool = pooling_matrix()
    clf = LogisticRegression(C=1.0, max_iter=recipe.max_epochs)
    clf.fit(x.reshape(len(x), -1) @ pool, y)
    _check_classes(clf.classes_)
    return DenseNet(
        layers=(
            DenseLayer(pool, None, relu=False),
            DenseLayer(
                np.ascontiguousarray(clf.coef_.T, dtype=np.float32),
                np.asarray(clf.intercept_, dtype=np.float32),
                relu=False,
            ),
        )
    )


def _fit_mlp(x: np.ndarray, y: np.ndarray, recipe: Recipe, random_state: int) -> DenseNet:
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=recipe.hidden,
        alpha=1e-3,
        batch_size=256,
        max_iter=recipe.max_epochs,
        random_state=random_state,
    )
    clf.fit(x.reshape(len(x), -1), y)
    _check_classes(clf.classes_)
    count = len(clf.coefs_)
    return DenseNet(
        layers=tuple(
            DenseLayer(
                np.asarray(w, dtype=np.float32),
                np.asarray(b, dtype=np.float32),
                relu=i < count - 1,
            )
            for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True))
        )
    )


def _check_classes(classes: np.ndarray) -> None:
    # The export maps output column k to digit k; a missing class would shift them.
    if list(classes) != list(range(NUM_CLASSES)):
        raise ZooError(f"training saw classes {list(classes)}, expected 0..9")


def train_model(
    recipe: Recipe,
    splits: Splits,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None = None,
) -> DenseNet:
    """Augment the clean training digits with seeded corruptions and fit ``recipe``.

    BLAS runs on one thread and the optimiser's seed comes from ``rng``, so the weights are
    the same for the same generator state. Stopping at ``max_epochs`` is deliberate (it
    keeps the build fast), so scikit-learn's convergence warning is silenced.
    """
    from sklearn.exceptions import ConvergenceWarning

    x, y = augment(splits.train_x, splits.train_y, recipe.train_copies, rng)
    random_state = int(rng.integers(0, 2**31 - 1))
    if progress is not None:
        progress(f"training {recipe.name} on {len(x)} images: {recipe.description}")
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if recipe.kind == "logistic":
            return _fit_logistic(x, y, recipe)
        return _fit_mlp(x, y, recipe, random_state)
