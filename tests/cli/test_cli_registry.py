"""``tierwise keys``, ``bundle``, ``registry`` and ``agent`` as a user meets them: real
processes, exit codes, JSON output and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent_helpers import (
    make_release,
    node_settings,
    publish_model,
    running_node,
    two_model_settings,
)
from onnx_models import detector_model


def tierwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bundle_and_registry_verbs(tmp_path: Path, shared_zoo_dir: Path) -> None:
    keys = _ok(tierwise("keys", "generate", "--out", "keys", "--json", cwd=tmp_path))
    created = _ok(tierwise(
        "bundle", "create", str(shared_zoo_dir), "-o", "b1", "--name", "digits",
        "--version", "1", "--tag", "hw=pi5", "--variant-tag", "small-int8:tier=edge", "--json",
        cwd=tmp_path,
    ))  # fmt: skip
    variants = {v["name"]: v for v in created["variants"]}
    assert variants["small-int8"]["tags"] == {"hw": "pi5", "tier": "edge"}
    pushed = _ok(
        tierwise(
            "registry",
            "push",
            "b1",
            "--store",
            "reg",
            "--key",
            "keys/tierwise.key",
            "--tag",
            "stable",
            "--json",
            cwd=tmp_path,
        )
    )
    # six models and, beside each, its drift reference
    assert pushed == pushed | {"uploaded_blobs": 12, "key_id": keys["key_id"]}
    listed = _ok(tierwise("registry", "list", "--store", "reg", "--json", cwd=tmp_path))
    assert [(b["version"], b["tags"]) for b in listed["bundles"]] == [("1", ["stable"])]
    shown = _ok(
        tierwise("registry", "show", "digits:stable", "--store", "reg", "--json", cwd=tmp_path)
    )
    assert shown["signed"] is True
    pulled = _ok(
        tierwise(
            "registry",
            "pull",
            "digits:1",
            "--store",
            "reg",
            "--into",
            "node",
            "--trusted-keys",
            "keys",
            "--json",
            cwd=tmp_path,
        )
    )
    assert pulled["fetched_blobs"] == 12
    verified = _ok(
        tierwise(
            "registry",
            "verify",
            "digits:1",
            "--store",
            "node",
            "--trusted-keys",
            "keys/tierwise.pub",
            "--json",
            cwd=tmp_path,
        )
    )
    assert verified["ok"] is True
    tagged = tierwise("registry", "tag", "digits", "1", "canary", "--store", "reg", cwd=tmp_path)
    assert tagged.returncode == 0, tagged.stderr
    gc = _ok(tierwise("registry", "gc", "--store", "node", "--json", cwd=tmp_path))
    assert gc["removed_blobs"] == 0

    # a flipped bit in the node's copy: verify exits 1 naming the check
    blob = next((tmp_path / "node" / "blobs" / "sha256").iterdir())
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[10] ^= 1
    blob.write_bytes(bytes(data))
    broken = tierwise("registry", "verify", "digits:1", "--store", "node", "--trusted-keys",
                      "keys", cwd=tmp_path)  # fmt: skip
    assert broken.returncode == 1
    assert "digest check failed" in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("bundle", "create", "nothing.onnx", "-o", "b", "--name", "x", "--version", "1"), 2,
         "no such file"),
        (("bundle", "create", ".", "-o", "b", "--name", "Bad Name", "--version", "1"), 2,
         "name: expected"),
        (("bundle", "create", ".", "-o", "b", "--name", "x", "--version", "1", "--tag", "hw"), 2,
         "--tag: expected KEY=VALUE"),
        (("registry", "list", "--store", "missing"), 2,
         "error: no store at missing (create one with `tierwise registry push"),
        (("registry", "pull", "digits", "--store", "missing", "--into", "n"), 2,
         "--trusted-keys"),
        (("registry", "pull", "Digits!", "--store", "x", "--into", "n", "--trusted-keys", "k"),
         2, "reference"),
        (("registry", "gc", "--store", "oci://127.0.0.1:1/x"), 2, "local store folder"),
        (("registry", "list", "--store", "oci://127.0.0.1:1/x", "--plain-http"), 1,
         "failed"),
        (("agent",), 2, "--config"),
        (("agent", "status", "--config", "missing.yaml"), 2, "missing.yaml"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(
    tmp_path: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    result = tierwise(*args, cwd=tmp_path)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "verb",
    [
        ("list",),
        ("show", "digits:1"),
        ("verify", "digits:1", "--trusted-keys", "keys"),
        ("pull", "digits:1", "--into", "node", "--trusted-keys", "keys"),
        ("tag", "digits", "1", "stable"),
        ("gc",),
    ],
    ids=lambda v: v[0],
)
def test_verbs_that_read_a_store_never_make_one(tmp_path: Path, verb: tuple[str, ...]) -> None:
    _ok(tierwise("keys", "generate", "--out", "keys", "--json", cwd=tmp_path))
    (tmp_path / "not-a-store").mkdir()
    why = {"regsitry": "", "not-a-store": ": the folder has no index.db, so it is not a store"}
    for store, reason in why.items():
        result = tierwise("registry", *verb, "--store", store, cwd=tmp_path)
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert result.stderr.strip() == (
            f"error: no store at {store}{reason} (create one with "
            f"`tierwise registry push BUNDLE --store {store} --key KEY`)"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys", "not-a-store"]
    assert list((tmp_path / "not-a-store").iterdir()) == []


def test_agent_verbs_talk_to_a_running_node(tmp_path: Path, shared_zoo_dir: Path) -> None:
    release = make_release(tmp_path, shared_zoo_dir)
    settings = node_settings(tmp_path, release)
    with running_node(settings) as node:
        config = tmp_path / "agent.yaml"
        config.write_text(
            f"state_dir: {settings.state_dir}\nport: {node.port}\nbundle: digits\n"
            f"serve: [{{variant: small}}]\nregistry: {{store: {release.root}, "
            f"trusted_keys: [{release.keys.public_path}]}}\n"
            f"desired_file: {settings.desired_file}\n"
        )
        first = tierwise("agent", "desired", "--config", str(config), "1", cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "digits:1" in first.stdout
        second = _ok(
            tierwise("agent", "desired", "--config", str(config), "2", "--json", cwd=tmp_path)
        )
        assert second["sync"]["result"] == "activated"
        status = _ok(tierwise("agent", "status", "--config", str(config), "--json", cwd=tmp_path))
        assert status["version"] == "2"
        back = tierwise("agent", "rollback", "--config", str(config), cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        assert "rolled back to 1" in back.stdout
        again = tierwise("agent", "rollback", "--config", str(config), "--to", "9", cwd=tmp_path)
        assert again.returncode == 1
        assert "cannot roll back to version 9" in again.stderr


def test_a_bundle_is_one_model_and_the_help_says_how_to_serve_several(
    tmp_path: Path, shared_zoo_dir: Path
) -> None:
    detector = detector_model(tmp_path / "detector.onnx")
    tiny = shared_zoo_dir / "tiny" / "1" / "model.onnx"
    mixed = tierwise("bundle", "create", str(detector), str(tiny), "-o", "b", "--name", "shelf",
                     "--version", "1", cwd=tmp_path)  # fmt: skip
    assert mixed.returncode == 2, mixed.stderr
    assert "a bundle's variants must share inputs and outputs" in mixed.stderr
    assert "put a different model in a bundle of its own" in mixed.stderr
    assert "Traceback" not in mixed.stderr
    assert not (tmp_path / "b" / "manifest.json").exists()
    for args, needle in (
        (("registry", "--help"), "pulls one bundle per model"),
        (("bundle", "create", "--help"), "a different model (a detector beside a classifier)"),
        (("agent", "--help"), "syncing several bundles, one per model"),
        (("agent", "rollback", "--help"), "--bundle"),
        (("agent", "desired", "--help"), "--bundle"),
    ):
        shown = tierwise(*args, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert needle in " ".join(shown.stdout.replace("│", " ").split()), (args, shown.stdout)


def test_agent_verbs_on_a_node_with_two_bundles(tmp_path: Path, shared_zoo_dir: Path) -> None:
    release = make_release(tmp_path, shared_zoo_dir)
    for version, source in (("1", "tiny"), ("2", "tiny-int8")):
        publish_model(release.store, release.keys, release.tmp, "classifier", version,
                      shared_zoo_dir / source / "1" / "model.onnx", variant="tiny")  # fmt: skip
    publish_model(release.store, release.keys, release.tmp, "detector", "1",
                  detector_model(tmp_path / "detector.onnx"), variant="neck")  # fmt: skip
    registry = {"store": str(release.root), "trusted_keys": [release.keys.public_path]}
    settings = two_model_settings(tmp_path, registry)
    with running_node(settings) as node:
        config = tmp_path / "agent.yaml"
        config.write_text(
            f"state_dir: {settings.state_dir}\nport: {node.port}\n"
            "bundles:\n  - {name: detector, serve: [{variant: neck, model: detector}]}\n"
            "  - {name: classifier, serve: [{variant: tiny, model: classifier}]}\n"
            f"registry: {{store: {release.root}, trusted_keys: [{release.keys.public_path}]}}\n"
            f"desired_file: {settings.desired_file}\n"
        )
        ambiguous = tierwise("agent", "desired", "--config", str(config), "1", cwd=tmp_path)
        assert ambiguous.returncode == 1
        assert "bundle: expected one of the bundles this node syncs (detector, classifier)" in (
            ambiguous.stderr
        )
        for bundle in ("detector", "classifier"):
            done = tierwise("agent", "desired", "--config", str(config), "1", "--bundle", bundle,
                            cwd=tmp_path)  # fmt: skip
            assert done.returncode == 0, done.stderr
        moved = tierwise("agent", "desired", "--config", str(config), "2", "--bundle",
                         "classifier", cwd=tmp_path)  # fmt: skip
        assert moved.returncode == 0, moved.stderr
        shown = tierwise("agent", "status", "--config", str(config), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].startswith("node store-1: ready")
        assert lines[1].startswith("  detector:1 (generation 1) models detector; kept none")
        assert lines[2].startswith("  classifier:2 (generation 3) models classifier; kept 1")
        back = tierwise("agent", "rollback", "--config", str(config), "--bundle", "classifier",
                        cwd=tmp_path)  # fmt: skip
        assert back.returncode == 0, back.stderr
        assert "classifier: rolled back to 1" in back.stdout
        status = _ok(tierwise("agent", "status", "--config", str(config), "--json", cwd=tmp_path))
        assert status["bundles"]["detector"]["version"] == "1"
        assert status["bundles"]["detector"]["generation"] == 1
        assert status["bundles"]["classifier"]["version"] == "1"
        assert status["bundles"]["classifier"]["last_sync"]["reference"] == "2"
        none = tierwise("agent", "rollback", "--config", str(config), "--bundle", "detector",
                        cwd=tmp_path)  # fmt: skip
        assert none.returncode == 1
        assert "of detector: versions to go back to: none" in none.stderr
