"""Scoped bearer tokens: the token and its hash line, the tokens file a server reads, the
guard's answers, and tokens given in environment variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from security_helpers import find_secret, new_token, tokens_file
from tierwise.errors import ConfigError, ForbiddenError, UnauthenticatedError
from tierwise.security import (
    AuthSettings,
    EnvToken,
    Guard,
    TokenStore,
    hash_line,
    make_token,
    parse_scopes,
    parse_token_lines,
)


def test_token_and_hash_line_round_trip() -> None:
    token, record = new_token("line-7", "infer,telemetry")
    assert re.fullmatch(r"tw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)
    line = hash_line(record)
    assert line.startswith(f"client=line-7 scopes=infer,telemetry id={record.key_id} sha256=")
    assert find_secret(line) is None  # the line holds no token
    (parsed,) = parse_token_lines(line + "\n", "tokens.txt")
    assert parsed == record
    store = TokenStore([parsed])
    principal = store.authenticate(f"Bearer {token}")
    assert principal is not None
    assert principal.client == "line-7"
    assert principal.scopes == {"infer", "telemetry"}
    assert store.authenticate(f"bearer {token}".encode()) == principal  # scheme: any case


def test_two_tokens_for_one_client_differ_and_salts_differ() -> None:
    first, a = new_token("ops", "admin")
    second, b = new_token("ops", "admin")
    assert first != second
    assert a.key_id != b.key_id
    assert a.salt != b.salt


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token", "Bearer tw_zz_short"],
)
def test_headers_that_carry_no_valid_token(header: str | None) -> None:
    _, record = new_token("a", "infer")
    assert TokenStore([record]).authenticate(header) is None


def test_wrong_secret_with_a_known_id_is_refused() -> None:
    token, record = new_token("a", "infer")
    other, _ = new_token("a", "infer")
    forged = token[: len("tw_") + 12] + other[len("tw_") + 12 :]  # known id, other secret
    assert forged != token
    assert TokenStore([record]).authenticate(f"Bearer {forged}") is None


def test_a_header_that_passed_is_one_lookup_and_one_that_failed_is_checked_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tierwise.security.tokens as tokens_module

    token, record = new_token("a", "infer")
    other, _ = new_token("a", "infer")
    forged = token[: len("tw_") + 12] + other[len("tw_") + 12 :]
    store = TokenStore([record])
    hashed: list[str] = []
    real = tokens_module._digest

    def counting(salt: bytes, secret: str) -> bytes:
        hashed.append(secret)
        return real(salt, secret)

    monkeypatch.setattr(tokens_module, "_digest", counting)
    header = f"Bearer {token}".encode()
    first = store.authenticate(header)
    assert first is not None
    assert [store.authenticate(header) for _ in range(3)] == [first] * 3
    assert len(hashed) == 1  # checked once, then known
    for _ in range(3):  # a failed header is never remembered
        assert store.authenticate(f"Bearer {forged}".encode()) is None
    assert len(hashed) == 4
    # another store (a reloaded tokens file without this token) knows nothing of it
    assert TokenStore([new_token("b", "infer")[1]]).authenticate(header) is None


def test_the_headers_that_passed_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import tierwise.security.tokens as tokens_module

    monkeypatch.setattr(tokens_module, "_MAX_PASSED", 2)
    token, record = new_token("a", "infer")
    store = TokenStore([record])
    headers = [f"Bearer {token}", f"bearer {token}", f"BEARER {token}", f"Bearer  {token}"]
    assert all(store.authenticate(h) is not None for h in headers)  # all still pass
    assert len(store._passed) == 2


def test_unknown_id_takes_the_constant_time_path_and_returns_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tierwise.security.tokens as tokens_module

    _, record = new_token("a", "infer")
    stranger, _ = new_token("b", "infer")
    compared: list[bytes] = []
    real = tokens_module.hmac.compare_digest

    def counting(x: bytes, y: bytes) -> bool:
        compared.append(y)
        return real(x, y)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", counting)
    assert TokenStore([record]).authenticate(f"Bearer {stranger}") is None
    # a digest comparison ran all the same, against the dummy record's digest
    assert compared == [b"\0" * 32]


def test_plaintext_token_in_a_tokens_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    token, record = new_token("a", "infer")
    path = tmp_path / "tokens.txt"
    path.write_text(f"# tokens\n{hash_line(record)}\n{token}\n")
    with pytest.raises(ConfigError) as caught:
        Guard.from_settings(AuthSettings(tokens_file=path))
    message = str(caught.value)
    assert f"{path}:3" in message
    assert "never a token" in message
    assert find_secret(message) is None
    assert token[3:15] not in message  # not even the id


def test_plaintext_token_inside_a_line_is_refused_too() -> None:
    token, _ = new_token("a", "infer")
    with pytest.raises(ConfigError) as caught:
        parse_token_lines(f"client=a scopes=infer id=0123456789ab sha256={token}\n", "f")
    assert find_secret(str(caught.value)) is None
    assert "f:1" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("client=a scopes=infer id=0123456789ab", "missing ['sha256']"),
        ("client=a scopes=infer id=0123456789ab sha256=00:11", "sha256"),
        ("client=a scopes=infer id=XYZ sha256={good}", "id"),
        ("client=a scopes=infer client=b id=0123456789ab sha256={good}", "each once"),
        ("client=a scopes=infer id=0123456789ab sha256={good} extra=1", "key=value"),
        ("client=a scopes=infer,root id=0123456789ab sha256={good}", "scopes"),
        ("client=a scopes= id=0123456789ab sha256={good}", "scopes"),
        ("client=bad/name scopes=infer id=0123456789ab sha256={good}", "client"),
    ],
)
def test_bad_lines_are_named_by_file_and_line(line: str, named: str) -> None:
    good = "00" * 16 + ":" + "ab" * 32
    text = "\n# a comment\n" + line.format(good=good) + "\n"
    with pytest.raises(ConfigError) as caught:
        parse_token_lines(text, "/etc/tierwise/tokens.txt")
    message = str(caught.value)
    assert "/etc/tierwise/tokens.txt:3" in message
    assert named in message


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    _, record = new_token("a", "infer")
    text = hash_line(record) + "\n" + hash_line(record) + "\n"
    with pytest.raises(ConfigError, match=r"f:2: id"):
        parse_token_lines(text, "f")


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(ConfigError, match="root"):
        parse_scopes("infer,root")
    with pytest.raises(ConfigError, match="one or more of infer, admin, telemetry"):
        make_token("a", "")
    with pytest.raises(ConfigError):
        EnvToken(env="T", client="a", scopes=["superuser"])  # type: ignore[list-item]


def test_open_scopes_refuses_admin() -> None:
    with pytest.raises(ConfigError, match="admin always needs a token"):
        AuthSettings(open_scopes=["infer", "admin"])
    assert AuthSettings(open_scopes=["infer", "telemetry"]).open_scopes == ["infer", "telemetry"]


def test_guard_answers_401_403_and_the_principal(tmp_path: Path) -> None:
    path, tokens = tokens_file(tmp_path / "t.txt", ("ops", "admin"), ("app", "infer"))
    guard = Guard.from_settings(AuthSettings(tokens_file=path))
    assert guard.protects
    principal = guard.check("admin", f"Bearer {tokens['ops']}")
    assert principal is not None
    assert principal.client == "ops"
    with pytest.raises(UnauthenticatedError) as missing:
        guard.check("infer", None)
    assert missing.value.status_code == 401
    assert not missing.value.invalid
    with pytest.raises(UnauthenticatedError) as wrong:
        guard.check("infer", "Bearer tw_0123456789ab_" + "A" * 43)
    assert wrong.value.invalid
    with pytest.raises(ForbiddenError) as forbidden:
        guard.check("admin", f"Bearer {tokens['app']}")
    assert forbidden.value.status_code == 403
    assert "'app'" in str(forbidden.value)
    assert "'admin'" in str(forbidden.value)
    assert find_secret(str(forbidden.value)) is None


def test_open_scope_answers_anyone_but_still_checks_a_token_sent(tmp_path: Path) -> None:
    path, tokens = tokens_file(tmp_path / "t.txt", ("ops", "admin"))
    guard = Guard.from_settings(AuthSettings(tokens_file=path, open_scopes=["infer"]))
    assert guard.check("infer", None) is None
    principal = guard.check("infer", f"Bearer {tokens['ops']}")
    assert principal is not None
    assert principal.client == "ops"
    with pytest.raises(UnauthenticatedError):
        guard.check("infer", "Bearer tw_0123456789ab_" + "B" * 43)
    with pytest.raises(UnauthenticatedError):
        guard.check("admin", None)


def test_no_tokens_means_an_open_guard() -> None:
    guard = Guard.from_settings(None)
    assert not guard.protects
    assert guard.check("admin", None) is None
    assert not Guard.from_settings(AuthSettings()).protects


def test_env_tokens(tmp_path: Path) -> None:
    token, _ = new_token("unused", "infer")  # only the token text is used
    settings = AuthSettings(
        tokens_env=[EnvToken(env="TIERWISE_GATEWAY_TOKEN", client="gateway", scopes=["infer"])]
    )
    guard = Guard.from_settings(settings, env={"TIERWISE_GATEWAY_TOKEN": token})
    principal = guard.check("infer", f"Bearer {token}")
    assert principal is not None
    assert principal.client == "gateway"
    with pytest.raises(ForbiddenError):
        guard.check("admin", f"Bearer {token}")


def test_env_token_missing_or_malformed_is_named_without_its_value() -> None:
    settings = AuthSettings(tokens_env=[EnvToken(env="TW_T", client="c", scopes=["infer"])])
    with pytest.raises(ConfigError, match=r"tokens_env\[TW_T\].*not set"):
        Guard.from_settings(settings, env={})
    with pytest.raises(ConfigError) as caught:
        Guard.from_settings(settings, env={"TW_T": "hunter2-not-a-token"})
    assert "hunter2" not in str(caught.value)
    assert "tokens_env[TW_T]" in str(caught.value)


def test_env_and_file_tokens_with_one_id_are_refused(tmp_path: Path) -> None:
    token, record = new_token("a", "infer")
    path = tmp_path / "t.txt"
    path.write_text(hash_line(record) + "\n")
    settings = AuthSettings(
        tokens_file=path, tokens_env=[EnvToken(env="T", client="b", scopes=["infer"])]
    )
    with pytest.raises(ConfigError, match="each token id once") as caught:
        Guard.from_settings(settings, env={"T": token})
    assert find_secret(str(caught.value)) is None


def test_unreadable_tokens_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError, match="tokens_file"):
        Guard.from_settings(AuthSettings(tokens_file=missing))
