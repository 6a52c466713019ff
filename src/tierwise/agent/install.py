"""Lay a verified bundle version out as the tier server's model repository.

Each activation gets a new generation number ``G``; the served variants appear as
``REPO/<model>/<G>/model.onnx``, with the variant's drift reference beside it as
``reference.json`` when the bundle carries one, hard links to the store's verified
blobs (a copy when the folders are on different file systems). A generation folder is
built under a hidden staging name and renamed into place whole, so the server's
repository never shows a half-written version, and a crash leaves only staging folders,
which the next start removes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tierwise.agent.settings import ServePart
from tierwise.registry.digest import fsync_dir
from tierwise.registry.local import LocalStore
from tierwise.registry.manifest import BundleManifest
from tierwise.registry.place import place_variant

__all__ = ["Installer"]

_STAGING = ".staging-"


class Installer:
    """Writes and removes generation folders in ``repo``."""

    def __init__(self, repo: Path, store: LocalStore, serve: list[ServePart]) -> None:
        self.repo = repo
        self.store = store
        self.serve = serve
        repo.mkdir(parents=True, exist_ok=True)

    @property
    def models(self) -> list[str]:
        return [part.model_name for part in self.serve]

    def install(self, manifest: BundleManifest, generation: int) -> dict[str, Path]:
        """Make generation ``generation`` of every served model; returns model -> file."""
        placed: dict[str, Path] = {}
        try:
            for part in self.serve:
                variant = manifest.variant(part.variant)
                folder = self.repo / part.model_name
                folder.mkdir(parents=True, exist_ok=True)
                staging = folder / f"{_STAGING}{generation}"
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                place_variant(self.store, variant, staging)
                fsync_dir(staging)
                final = folder / str(generation)
                os.replace(staging, final)
                fsync_dir(folder)
                placed[part.model_name] = final / "model.onnx"
        except BaseException:
            self.remove(generation)
            raise
        return placed

    def remove(self, generation: int) -> None:
        """Delete generation ``generation`` (and its staging folders) of every model."""
        for model in self.models:
            for name in (str(generation), f"{_STAGING}{generation}"):
                shutil.rmtree(self.repo / model / name, ignore_errors=True)

    def keep_only(self, generation: int | None) -> list[int]:
        """Delete every generation but ``generation`` and all staging folders (at start:
        what a crash left behind); returns the generations removed."""
        removed: set[int] = set()
        for model in self.models:
            folder = self.repo / model
            if not folder.is_dir():
                continue
            for child in folder.iterdir():
                if child.name.startswith(_STAGING):
                    shutil.rmtree(child, ignore_errors=True)
                elif child.is_dir() and child.name.isdigit() and int(child.name) != generation:
                    shutil.rmtree(child, ignore_errors=True)
                    removed.add(int(child.name))
        return sorted(removed)
