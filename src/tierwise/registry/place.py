"""Laying a verified variant out in a folder, as a tier server's model repository wants it.

``place_variant`` puts the variant's model at ``FOLDER/model.onnx`` and, when the variant
carries one, its drift reference at ``FOLDER/reference.json`` beside it (where the tier
server looks for it), each a hard link to the store's verified blob, or a copy, flushed
to disk, when the folders are on different file systems.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tierwise.registry.local import LocalStore
from tierwise.registry.manifest import REFERENCE_FILE, VariantEntry

__all__ = ["MODEL_FILE", "place_variant"]

MODEL_FILE = "model.onnx"


def _link(blob: Path, target: Path) -> None:
    try:
        os.link(blob, target)
    except OSError:
        shutil.copyfile(blob, target)
        with target.open("rb") as file:
            os.fsync(file.fileno())


def place_variant(store: LocalStore, variant: VariantEntry, folder: Path) -> Path:
    """Put ``variant``'s model (and its drift reference, if any) from ``store`` into the
    existing, empty ``folder``; returns the model's path. The caller verified the blobs
    and syncs the folder."""
    model = folder / MODEL_FILE
    _link(store.blob_path(variant.digest), model)
    if variant.reference is not None:
        _link(store.blob_path(variant.reference.digest), folder / REFERENCE_FILE)
    return model
