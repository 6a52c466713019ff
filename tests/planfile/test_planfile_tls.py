"""A plan's remote tiers over TLS: ``tls`` loads with its files made absolute, and a
``tls`` that cannot work (on an http:// url, on a local tier, a certificate without its
key, a file that is not there, an unknown key) is a problem naming the tier's field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tierwise.errors import SpecError, SpecProblem
from tierwise.planfile.load import load_plan

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plans" / "digits.yaml"


def plan_with(tmp_path: Path, cloud: dict[str, Any], device: dict[str, Any] | None = None) -> Path:
    """The example plan with the cloud tier's fields updated by ``cloud`` (and the
    device tier's by ``device``), written next to a ``certs`` folder of PEM files."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["tiers"]["cloud"].update(cloud)
    data["tiers"]["device"].update(device or {})
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    for name in ("ca.pem", "router.pem", "router.key"):
        (certs / name).write_text("PEM\n")
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def problems(path: Path) -> list[SpecProblem]:
    with pytest.raises(SpecError) as info:
        load_plan(path, check_files=False)
    return info.value.problems


def only(path: Path) -> SpecProblem:
    found = problems(path)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


HTTPS = {"url": "https://infer.example.com"}


def test_tls_loads_with_paths_relative_to_the_plan(tmp_path: Path) -> None:
    tls = {
        "ca": "certs/ca.pem",
        "cert": "certs/router.pem",
        "key": "certs/router.key",
        "server_name": "infer.internal",
    }
    plan = load_plan(plan_with(tmp_path, {**HTTPS, "tls": tls}), check_files=False)
    loaded = plan.tiers["cloud"].tls
    assert loaded is not None
    assert loaded.ca == (tmp_path / "certs" / "ca.pem").resolve()
    assert loaded.cert == (tmp_path / "certs" / "router.pem").resolve()
    assert loaded.key == (tmp_path / "certs" / "router.key").resolve()
    assert loaded.server_name == "infer.internal"
    assert not loaded.insecure_skip_verify
    assert plan.tiers["edge"].tls is None


def test_https_without_tls_is_accepted(tmp_path: Path) -> None:
    plan = load_plan(plan_with(tmp_path, HTTPS), check_files=False)
    assert plan.tiers["cloud"].tls is None


def test_tls_on_an_http_url_is_a_problem_naming_the_tier(tmp_path: Path) -> None:
    problem = only(plan_with(tmp_path, {"tls": {"ca": "certs/ca.pem"}}))
    assert problem.path == "tiers.cloud"
    assert "tls applies only to an https:// url" in problem.message
    assert "http://127.0.0.1:8002" in problem.message


def test_tls_on_a_local_tier_is_a_problem(tmp_path: Path) -> None:
    problem = only(plan_with(tmp_path, HTTPS, device={"tls": {"ca": "certs/ca.pem"}}))
    assert problem.path == "tiers.device"
    assert "tls apply only to a remote tier" in problem.message


@pytest.mark.parametrize("given", ["cert", "key"])
def test_a_client_certificate_needs_its_key(tmp_path: Path, given: str) -> None:
    tls = {given: f"certs/router.{'pem' if given == 'cert' else 'key'}"}
    problem = only(plan_with(tmp_path, {**HTTPS, "tls": tls}))
    assert problem.path == "tiers.cloud.tls"
    assert "both a client certificate and its key, or neither" in problem.message


def test_a_missing_tls_file_is_a_problem_unless_files_are_not_checked(tmp_path: Path) -> None:
    path = plan_with(tmp_path, {**HTTPS, "tls": {"ca": "certs/nope.pem"}})
    with pytest.raises(SpecError) as info:
        load_plan(path)
    found = [p for p in info.value.problems if p.path.startswith("tiers.cloud")]
    assert len(found) == 1, [str(p) for p in info.value.problems]
    assert found[0].path == "tiers.cloud.tls.ca"
    assert str((tmp_path / "certs" / "nope.pem").resolve()) in found[0].message
    assert load_plan(path, check_files=False).tiers["cloud"].tls is not None


@pytest.mark.parametrize(
    ("tls", "path", "words"),
    [
        ({"verify": False}, "tiers.cloud.tls", "unknown field 'verify' (allowed: ca, cert"),
        ({"insecure_skip_verify": "yes"}, "tiers.cloud.tls.insecure_skip_verify", "true or false"),
        ({"server_name": ""}, "tiers.cloud.tls.server_name", "non-empty"),
        ("certs/ca.pem", "tiers.cloud.tls", "mapping"),
    ],
)
def test_a_malformed_tls_is_a_problem_at_its_field(
    tmp_path: Path, tls: object, path: str, words: str
) -> None:
    problem = only(plan_with(tmp_path, {**HTTPS, "tls": tls}))
    assert problem.path == path
    assert words in problem.message


def test_insecure_skip_verify_must_be_said_plainly(tmp_path: Path) -> None:
    plan = load_plan(
        plan_with(tmp_path, {**HTTPS, "tls": {"insecure_skip_verify": True}}), check_files=False
    )
    tls = plan.tiers["cloud"].tls
    assert tls is not None
    assert tls.insecure_skip_verify
