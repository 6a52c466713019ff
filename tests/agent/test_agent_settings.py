"""agent.yaml: relative paths, bounds, and errors that never echo a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierwise.agent import load_agent_settings
from tierwise.errors import ConfigError

BASE = """
state_dir: node
bundle: digits
serve: [{variant: small}]
registry: {store: ../registry, trusted_keys: [keys/release.pub]}
desired_file: desired.yaml
"""


def test_relative_paths_are_taken_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "edge").mkdir()
    config = tmp_path / "edge" / "agent.yaml"
    config.write_text(BASE)
    settings = load_agent_settings(config, port=9001)
    assert settings.state_dir == tmp_path / "edge" / "node"
    assert settings.registry.store == str(tmp_path / "edge" / "../registry")
    assert settings.registry.trusted_keys == [tmp_path / "edge" / "keys" / "release.pub"]
    assert settings.port == 9001


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("thermal: {high_c: 60, low_c: 70}\n", r"low_c \(70\.0\) must be below high_c"),
        ("keep_versions: 0\n", "keep_versions"),
        ("serve: []\n", "serve"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, extra: str, needle: str) -> None:
    config = tmp_path / "agent.yaml"
    serve_line = "serve: [{variant: small}]\n"
    text = BASE.replace(serve_line, "") if extra.startswith("serve") else BASE
    config.write_text(text + extra)
    with pytest.raises(ConfigError, match=needle):
        load_agent_settings(config)


def test_a_misplaced_password_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(BASE.replace("registry: {", "registry: {password: hunter2-SECRET, "))
    with pytest.raises(ConfigError, match=r"registry\.password") as info:
        load_agent_settings(config)
    assert "hunter2" not in str(info.value)


def test_every_problem_is_named_in_words_with_the_nearest_setting(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    text = BASE.replace("state_dir: node\n", "") + "sync_intervall: 5\nport: 99999\n"
    config.write_text(text + "thermal: {high_c: 60, low_c: 70, pol_s: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_agent_settings(config)
    message = str(info.value)
    assert message.startswith(f"{config}: expected valid settings; ")
    assert "state_dir: missing (required)" in message
    assert "sync_intervall: unknown setting (did you mean 'sync_interval_s'?)" in message
    assert "thermal.pol_s: unknown setting (did you mean 'poll_s'?)" in message
    assert "port: Input should be less than or equal to 65535, got 99999" in message
    assert "{" not in message.split("expected", 1)[1]  # no settings dumped as a dict


def test_the_router_front_cannot_share_the_nodes_port(tmp_path: Path) -> None:
    from tierwise.agent import run_agent

    config = tmp_path / "agent.yaml"
    config.write_text(
        BASE + "port: 18123\ngateway: {plan: plan.yaml, local_tier: edge, port: 18124}\n"
    )
    settings = load_agent_settings(config)
    assert settings.gateway is not None
    clash = settings.model_copy(  # what --gateway-port 18123 asks for
        update={"gateway": settings.gateway.model_copy(update={"port": 18123})}
    )
    with pytest.raises(ConfigError, match=r"gateway\.port: expected a port other than the node's"):
        run_agent(clash, env={})
