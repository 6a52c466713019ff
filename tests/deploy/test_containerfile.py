"""The Containerfile's structure, as far as it can be checked without a container engine:
one image with entrypoint ``tierwise``, a non-root user matching the pods', writable
paths as volumes for a read-only root filesystem, no architecture-specific steps, no
secrets; the build context is the package alone."""

from __future__ import annotations

import re

from deploy_helpers import ROOT

from tierwise.deploy.pods import pod_security

TEXT = (ROOT / "Containerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", TEXT)
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_one_image_with_the_tierwise_entrypoint() -> None:
    steps = _instructions()
    final = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    last = steps[final:]
    assert ("ENTRYPOINT", '["tierwise"]') in last
    assert last[0][1].startswith("docker.io/library/python:${PYTHON_VERSION}-slim")
    assert any(w == "COPY" and rest.startswith("--from=build") for w, rest in last)


def test_runs_as_the_pods_non_root_user() -> None:
    users = [rest for w, rest in _instructions() if w == "USER"]
    assert users == ["10001:10001"]
    pod = pod_security()
    assert (pod["runAsUser"], pod["runAsGroup"]) == (10001, 10001)


def test_read_only_root_filesystem_friendly() -> None:
    steps = dict((w, rest) for w, rest in _instructions() if w in ("VOLUME", "ENV"))
    assert steps["VOLUME"] == '["/tmp", "/var/lib/tierwise"]'
    env = [rest for w, rest in _instructions() if w == "ENV"][-1]
    for setting in ("HOME=/tmp", "XDG_CACHE_HOME=/tmp/cache", "MPLCONFIGDIR=/tmp/matplotlib"):
        assert setting in env


def test_no_architecture_specific_steps_and_no_secrets() -> None:
    lowered = TEXT.lower()
    for word in ("amd64.deb", "x86_64", "aarch64", "--platform=", "uname -m"):
        assert word not in lowered
    steps = _instructions()
    assert not any("secret" in rest.lower() for w, rest in steps if w in ("ARG", "ENV"))
    assert not re.search(r"(password|token|secret|api_key)\s*=", lowered)


def test_build_context_is_the_package() -> None:
    ignore = (ROOT / ".containerignore").read_text().splitlines()
    assert ignore[1:5] == ["*", "!pyproject.toml", "!README.md", "!src/"]
