"""The zoo's task: scikit-learn's 8x8 handwritten digits, made harder by seeded corruptions.

The digits ship inside scikit-learn, so nothing is downloaded. Clean digits are too easy
for a model ladder (every model scores ~97%), so images are blurred, shifted, partly
occluded and noised; ``severity`` scales all four, which lets drift checks make data
"more corrupted" than what the models were trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tierwise.errors import ConfigError

__all__ = [
    "IMAGE_SHAPE",
    "NUM_CLASSES",
    "Splits",
    "augment",
    "corrupt",
    "load_splits",
    "source_images",
]

IMAGE_SHAPE: tuple[int, int] = (8, 8)
NUM_CLASSES = 10

# Corruption strengths at severity 1.0.
_BLUR_SIGMA_MAX = 0.5  # pixels; drawn uniformly in [0, max]
_SHIFT_MAX = 0.6  # pixels in each direction, sub-pixel (bilinear)
_OCCLUSION_PROBABILITY = 0.25  # chance of one blacked-out 2x2..3x3 block
_NOISE_STD = 0.06  # additive Gaussian noise on [0, 1] pixels


@dataclass(frozen=True)
class Splits:
    """Clean training digits and the corrupted held-out split (disjoint source images)."""

    train_x: np.ndarray  # float32 [N, 8, 8] in [0, 1], clean
    train_y: np.ndarray  # int64 [N]
    eval_x: np.ndarray  # float32 [M, 8, 8] in [0, 1], corrupted
    eval_y: np.ndarray  # int64 [M]
    train_index: np.ndarray  # positions in load_digits() of the training images
    eval_index: np.ndarray  # positions of the held-out source images (each used eval_copies x)


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.ndim != 3:
        shape = getattr(images, "shape", type(images).__name__)
        raise ConfigError("images", "a numpy array of shape [N, H, W]", shape)
    if images.dtype.kind != "f":
        raise ConfigError("images", "a floating-point array with pixels in [0, 1]", images.dtype)


def corrupt(images: np.ndarray, rng: np.random.Generator, *, severity: float = 1.0) -> np.ndarray:
    """Return a corrupted float32 copy of ``images`` ([N, H, W], pixels in [0, 1]).

    Each image independently gets a Gaussian blur, a sub-pixel shift, maybe one occluded
    block, and additive noise, then is clipped back to [0, 1]. Every random draw comes from
    ``rng``, so the same generator state gives the same output. ``severity`` scales every
    corruption (0 returns an unchanged copy; 2 is twice as strong as training data).
    """
    _check_images(images)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng", "a numpy.random.Generator", type(rng).__name__)
    if isinstance(severity, bool) or not isinstance(severity, int | float):
        raise ConfigError("severity", "a finite number >= 0", severity)
    if not math.isfinite(severity) or severity < 0:
        raise ConfigError("severity", "a finite number >= 0", severity)
    out = images.astype(np.float32, copy=True)
    n, height, width = out.shape
    if n == 0 or severity == 0:
        return out
    # Draw every parameter up front, vectorised, so the stream does not depend on branches.
    sigmas = np.asarray(rng.uniform(0.0, _BLUR_SIGMA_MAX * severity, size=n))
    shifts = np.asarray(rng.uniform(-_SHIFT_MAX * severity, _SHIFT_MAX * severity, size=(n, 2)))
    occlude = np.asarray(rng.random(n) < min(1.0, _OCCLUSION_PROBABILITY * severity))
    block_h = np.minimum(rng.integers(2, 4, size=n), height)
    block_w = np.minimum(rng.integers(2, 4, size=n), width)
    top = (rng.random(n) * (height - block_h + 1)).astype(np.int64)
    left = (rng.random(n) * (width - block_w + 1)).astype(np.int64)
    noise = rng.normal(0.0, _NOISE_STD * severity, size=out.shape).astype(np.float32)
    for i in range(n):
        image = out[i]
        if sigmas[i] > 0.05:
            image = ndimage.gaussian_filter(image, float(sigmas[i]), mode="constant")
        image = ndimage.shift(image, shifts[i], order=1, mode="constant", cval=0.0)
        if occlude[i]:
            image[top[i] : top[i] + block_h[i], left[i] : left[i] + block_w[i]] = 0.0
        out[i] = image
    out += noise
    np.clip(out, 0.0, 1.0, out=out)
    return out


def augment(
    x: np.ndarray, y: np.ndarray, copies: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` corrupted versions of every image in ``x`` (labels repeated to match)."""
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ConfigError("copies", "an integer >= 1", copies)
    return corrupt(np.tile(x, (copies, 1, 1)), rng), np.tile(y, copies)


def source_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 clean digits (float32 ``[N, 8, 8]`` in [0, 1]) and their labels, in
    scikit-learn's order (the positions ``Splits`` indexes)."""
    from sklearn.datasets import load_digits  # imported late: sklearn is slow to import

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float64) / 16.0).astype(np.float32)
    return images, np.asarray(bunch.target, dtype=np.int64)


def load_splits(
    rng: np.random.Generator, *, eval_fraction: float = 0.3, eval_copies: int = 3
) -> Splits:
    """Split the 1,797 digits (stratified by class) before any corruption, then corrupt the
    held-out images ``eval_copies`` times each; training images stay clean for augmentation.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ConfigError("eval_fraction", "a number strictly between 0 and 1", eval_fraction)
    images, labels = source_images()
    eval_idx: list[np.ndarray] = []
    train_idx: list[np.ndarray] = []
    for label in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = round(len(members) * eval_fraction)
        eval_idx.append(members[:cut])
        train_idx.append(members[cut:])
    train = rng.permutation(np.concatenate(train_idx))
    held = rng.permutation(np.concatenate(eval_idx))
    eval_x, eval_y = augment(images[held], labels[held], eval_copies, rng)
    return Splits(
        train_x=images[train],
        train_y=labels[train],
        eval_x=eval_x,
        eval_y=eval_y.astype(np.int64),
        train_index=train,
        eval_index=held,
    )
