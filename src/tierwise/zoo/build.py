"""Build the model family into a model repository: ``build_zoo(out_dir, seed=...)``.

Layout written (``zoo.json`` last, so a crash never leaves a manifest claiming files that
are not there)::

    DIR/tiny/1/model.onnx        DIR/tiny-int8/1/model.onnx
    DIR/small/1/model.onnx       DIR/small-int8/1/model.onnx
    DIR/large/1/model.onnx       DIR/large-int8/1/model.onnx
    DIR/eval.npz                 DIR/zoo.json

and beside each ``model.onnx`` its drift reference, ``reference.json``, built on the
held-out split (:mod:`tierwise.zoo.reference`).

Every random draw comes from one ``numpy.random.SeedSequence(seed)``, training runs BLAS
on one thread, and files carry no timestamps or temporary names, so the same seed gives
byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from tierwise.errors import ConfigError, ZooError
from tierwise.runtime import Signature, TensorSpec, read_signature
from tierwise.zoo.data import IMAGE_SHAPE, NUM_CLASSES, augment, load_splits
from tierwise.zoo.export import (
    INPUT_NAME,
    LABEL_NAME,
    PROBABILITIES_NAME,
    quantize_int8,
    to_onnx,
)
from tierwise.zoo.files import sha256_of, write_atomic, write_npz
from tierwise.zoo.manifest import (
    BUILDER_VERSION,
    EVAL_FILE,
    MANIFEST_FILE,
    Tier,
    Zoo,
    ZooVariant,
)
from tierwise.zoo.reference import reference_for_model, reference_path
from tierwise.zoo.train import RECIPES, train_model

__all__ = [
    "CALIBRATION_SAMPLES",
    "TASK",
    "ZOO_SIGNATURE",
    "build_zoo",
    "split_rng",
    "variant_path",
]

TASK = "digits-8x8: scikit-learn handwritten digits with seeded blur, shift, occlusion, noise"
#: Images (one corrupted copy of training digits) used to calibrate int8 scales.
CALIBRATION_SAMPLES = 512

#: The signature every variant has: the contract routers, servers and benchmarks rely on.
ZOO_SIGNATURE = Signature(
    inputs=(TensorSpec(INPUT_NAME, "FP32", (-1, *IMAGE_SHAPE)),),
    outputs=(
        TensorSpec(PROBABILITIES_NAME, "FP32", (-1, NUM_CLASSES)),
        TensorSpec(LABEL_NAME, "INT64", (-1,)),
    ),
)

# Independent random streams, by position in SeedSequence.spawn (append, never reorder).
_STREAM_SPLIT, _STREAM_CALIBRATION, _STREAM_FIRST_MODEL = 0, 1, 2


def split_rng(seed: int) -> np.random.Generator:
    """The random stream ``build_zoo(seed=seed)`` splits and corrupts the data with."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(_STREAM_SPLIT + 1)[-1])


def variant_path(name: str) -> str:
    """Where a variant's ONNX file lies, relative to the zoo directory (Triton-style)."""
    return f"{name}/1/model.onnx"


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError("seed", "a non-negative integer", seed)
    return int(seed)


def _accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (labels,) = session.run([LABEL_NAME], {INPUT_NAME: x})
    return float(np.count_nonzero(labels == y)) / len(y)


def _write_variant(
    root: Path,
    model: onnx.ModelProto,
    *,
    name: str,
    parent: str | None,
    tier: Tier,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
) -> ZooVariant:
    relative = variant_path(name)
    path = root / relative
    write_atomic(path, model.SerializeToString(deterministic=True))
    signature = read_signature(path)
    if signature != ZOO_SIGNATURE:
        raise ZooError(
            f"{name}: exported signature {signature.to_dict()} breaks the zoo contract "
            f"{ZOO_SIGNATURE.to_dict()}"
        )
    reference = reference_for_model(path, eval_x, output=PROBABILITIES_NAME, scores="probabilities")
    reference_file = root / reference_path(name)
    write_atomic(reference_file, reference.to_json())
    return ZooVariant(
        name=name,
        parent=parent,
        tier=tier,
        quantization="fp32" if parent is None else "int8",
        accuracy=_accuracy(path, eval_x, eval_y),
        size_bytes=path.stat().st_size,
        sha256=sha256_of(path),
        path=relative,
        signature=signature,
        reference=reference_path(name),
        reference_sha256=sha256_of(reference_file),
    )


def build_zoo(
    out_dir: str | Path,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Zoo:
    """Train tiny / small / large digit classifiers, export them and their int8 variants to
    ONNX under ``out_dir``, and describe them in ``out_dir/zoo.json``.

    ``progress`` receives one human-readable line per step. Raises ConfigError for a bad
    seed or an ``out_dir`` that is a file, ZooError when a step fails.
    """
    seed = _check_seed(seed)
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError("out_dir", "a directory (or a path that does not exist yet)", str(root))

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    try:
        root.mkdir(parents=True, exist_ok=True)
        # A stale manifest must not outlive the files it describes while they are rewritten.
        (root / MANIFEST_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise ZooError(f"cannot prepare {root}: {exc}") from exc

    streams = [
        np.random.default_rng(s)
        for s in np.random.SeedSequence(seed).spawn(_STREAM_FIRST_MODEL + len(RECIPES))
    ]
    say(f"preparing data (seed {seed})")
    splits = load_splits(streams[_STREAM_SPLIT])
    calibration_x, _ = augment(splits.train_x, splits.train_y, 1, streams[_STREAM_CALIBRATION])
    calibration_x = calibration_x[:CALIBRATION_SAMPLES]

    variants: list[ZooVariant] = []
    try:
        for index, recipe in enumerate(RECIPES):
            net = train_model(recipe, splits, streams[_STREAM_FIRST_MODEL + index], say)
            say(f"exporting {recipe.name} and {recipe.name}-int8")
            fp32 = to_onnx(
                net,
                name=recipe.name,
                description=f"tierwise zoo {recipe.name} ({recipe.tier}): {recipe.description}",
                producer_version=BUILDER_VERSION,
            )
            int8 = quantize_int8(
                fp32,
                calibration_x,
                name=f"{recipe.name}-int8",
                producer_version=BUILDER_VERSION,
            )
            for name, model, parent in (
                (recipe.name, fp32, None),
                (f"{recipe.name}-int8", int8, recipe.name),
            ):
                variants.append(
                    _write_variant(
                        root,
                        model,
                        name=name,
                        parent=parent,
                        tier=recipe.tier,
                        eval_x=splits.eval_x,
                        eval_y=splits.eval_y,
                    )
                )
                say(f"{name}: accuracy {variants[-1].accuracy:.2%}")
        write_npz(root / EVAL_FILE, {"x": splits.eval_x, "y": splits.eval_y})
        zoo = Zoo(
            root=root,
            seed=seed,
            builder_version=BUILDER_VERSION,
            task=TASK,
            eval_samples=len(splits.eval_y),
            eval_sha256=sha256_of(root / EVAL_FILE),
            variants=tuple(variants),
        )
        write_atomic(root / MANIFEST_FILE, zoo.to_json())
    except OSError as exc:
        raise ZooError(f"cannot write the zoo to {root}: {exc}") from exc
    say(f"wrote {root / MANIFEST_FILE}")
    return zoo
