"""The desired-state document (one reference, or one per bundle) and the settings of a node
that syncs several bundles, old forms included."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tierwise.agent import AgentState, DesiredState, load_agent_settings, parse_desired
from tierwise.errors import AgentError, ConfigError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("ref: stable\n", DesiredState("stable")),
        ("version: 3\n", DesiredState("3")),  # the older key
        ('{"ref": "2", "note": "set by the fleet"}', DesiredState("2")),  # more is ignored
        (f"refs: {{detector: '1', classifier: '{DIGEST}'}}\n",
         DesiredState(None, {"detector": "1", "classifier": DIGEST})),
        ("ref: '4'\nrefs: {detector: '1'}\n", DesiredState("4", {"detector": "1"})),
    ],
)  # fmt: skip
def test_documents(text: str, wanted: DesiredState) -> None:
    assert parse_desired(text, "d.yaml") == wanted


def test_which_reference_each_bundle_gets() -> None:
    both = DesiredState("4", {"detector": "1"})
    assert (both.reference("detector"), both.reference("classifier")) == ("1", "4")
    only = DesiredState(None, {"detector": "1"})
    assert only.reference("classifier") is None
    assert only.with_refs({"classifier": "2"}).to_doc() == {
        "refs": {"classifier": "2", "detector": "1"}
    }
    assert DesiredState("7").to_doc() == {"ref": "7"}  # the one-bundle file, as before
    with pytest.raises(ConfigError, match=r"d\.yaml: refs: expected bundles this node syncs"):
        only.check(["tracker", "classifier"], "d.yaml")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{}", "ref: expected a version, tag or sha256 digest"),
        ("ref: '../../etc'\n", "ref: expected a version, tag or sha256 digest"),
        ("refs: {}\n", "refs: expected a mapping"),
        ("refs: [detector]\n", "refs: expected a mapping"),
        ("refs: {Detector: '1'}\n", "refs: expected bundle names as keys"),
        ("refs: {detector: 'a b'}\n", "refs.detector: expected a version"),
        ("refs: {detector: {ref: 1}}\n", "refs.detector: expected a version"),
        ("- 1\n", "expected YAML or JSON"),
    ],
)
def test_bad_documents_name_the_field(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=r"d\.yaml") as info:
        parse_desired(text, "d.yaml")
    assert needle in str(info.value)


BASE = """
state_dir: node
registry: {store: ../registry, trusted_keys: [keys/release.pub]}
desired_file: desired.yaml
"""
TWO = """bundles:
  - {name: detector, serve: [{variant: neck, model: detector}]}
  - {name: classifier, serve: [{variant: tiny, model: classifier}]}
"""


def test_one_bundle_and_several_bundles_forms(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(BASE + "bundle: digits\nserve: [{variant: small}]\n")
    one = load_agent_settings(config)
    assert [(b.name, b.models) for b in one.bundle_parts] == [("digits", ["small"])]
    config.write_text(BASE + TWO)
    two = load_agent_settings(config)
    assert [(b.name, b.variants) for b in two.bundle_parts] == [
        ("detector", ["neck"]), ("classifier", ["tiny"]),
    ]  # fmt: skip
    assert two.models == ["detector", "classifier"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (TWO + "bundle: digits\n", "give bundles (one entry per bundle), or bundle and serve"),
        ("bundle: digits\n", "serve: missing; give bundles:"),
        ("", "bundle: missing; give bundles:"),
        (TWO.replace("model: classifier", "model: detector"),
         "model names must be unique on the node"),
        (TWO.replace("name: classifier", "name: detector"), "bundles: each bundle once"),
        (TWO.replace("name: detector", "name: Detector"), "bundles.0.name"),
        (TWO.replace("serve: [{variant: neck, model: detector}]", "serve: []"),
         "bundles.0.serve"),
        (TWO + "gateway: {plan: p.yaml, local_tier: []}\n", "gateway.local_tier"),
    ],
)  # fmt: skip
def test_bad_bundle_settings_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(BASE + text)
    with pytest.raises(ConfigError) as info:
        load_agent_settings(config)
    assert needle in str(info.value)


def test_state_files_old_and_new(tmp_path: Path) -> None:
    active = {"version": "2", "digest": DIGEST, "generation": 4, "activated_s": 1.0}
    path = tmp_path / "agent-state.json"
    path.write_bytes(orjson.dumps({"active": active, "previous": [], "held": {},
                                   "next_generation": 5}))  # fmt: skip
    owners: list[str] = []

    def owner(digest: str) -> str:
        owners.append(digest)
        return "classifier"

    state = AgentState.load(path, owner=owner)
    assert owners == [DIGEST]
    assert state.next_generation == 5
    assert state.of("classifier").active is not None
    assert state.of("detector").active is None
    state.save()
    again = AgentState.load(path, owner=lambda d: None)  # the new form needs no owner
    assert again.bundles["classifier"].active == state.bundles["classifier"].active
    dropped = tmp_path / "old.json"
    dropped.write_bytes(orjson.dumps({"active": active}))
    assert AgentState.load(dropped, owner=lambda d: None).bundles == {}
    dropped.write_bytes(b'{"bundles": {"x": {"active": {"version": 1}}}}')
    with pytest.raises(AgentError, match="unreadable"):
        AgentState.load(dropped, owner=lambda d: None)
