"""The control store on both backends: a real SQLite file and a real PostgreSQL server.

Every behaviour is checked on both; the SQLite file is also killed with SIGKILL in the
middle of a stream of decisions, and several store objects (replicas) share one database.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server_helpers import free_port
from tierwise.control.store import (
    ACTIVE_STATES,
    AuditEntry,
    Change,
    ControlStore,
    Heartbeat,
    NodeRecord,
    RolloutRow,
)
from tierwise.control.store_open import STORE_URL_EXPECTED, open_control_store, redact_dsn
from tierwise.errors import ConfigError, TierwiseError

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "state" / "control.db")  # the folder does not exist yet
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
def store(url: str) -> Iterator[ControlStore]:
    opened = open_control_store(url)
    yield opened
    opened.close()


def _raw(url: str, statement: str) -> list[tuple[object, ...]]:
    """Run one statement on the database behind ``url`` with the bare driver."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement)
            return list(cur.fetchall()) if cur.description else []
    with sqlite3.connect(url) as conn:
        return list(conn.execute(statement).fetchall())


def _entry(action: str, rollout: str | None = "r1", **detail: object) -> AuditEntry:
    return AuditEntry(at_s=1000.0, actor="control", action=action, rollout=rollout, detail=detail)


def _rollout(rollout_id: str, bundle: str, state: str, at_s: float = 1.0) -> RolloutRow:
    return RolloutRow(rollout_id, bundle, state, {"id": rollout_id, "stages": [1, 10]}, at_s)


def _run_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_kind_names_the_backend(store: ControlStore, url: str) -> None:
    assert store.kind == ("postgresql" if url.startswith("postgresql://") else "sqlite")


def test_heartbeats_upsert_and_keep_the_first_registration(store: ControlStore) -> None:
    store.record_heartbeats([
        Heartbeat("edge-b", {"site": "lyon"}, {"bundles": {"m": "v1"}}, 100.0),
        Heartbeat("edge-a", {"site": "paris"}, {"ok": True}, 100.5),
    ])  # fmt: skip
    store.record_heartbeats([Heartbeat("edge-b", {"site": "nice", "gpu": "no"}, {"n": 2}, 130.0)])
    assert store.get_node("edge-b") == NodeRecord(
        "edge-b", {"site": "nice", "gpu": "no"}, {"n": 2}, registered_s=100.0, last_seen_s=130.0
    )
    assert [n.node for n in store.list_nodes()] == ["edge-a", "edge-b"]
    assert store.get_node("edge-a") == NodeRecord("edge-a", {"site": "paris"}, {"ok": True},
                                                  100.5, 100.5)  # fmt: skip
    assert store.get_node("nobody") is None
    store.record_heartbeats([])  # nothing to write is not an error


def test_a_late_heartbeat_never_moves_a_node_back(store: ControlStore) -> None:
    store.record_heartbeats([Heartbeat("edge-a", {"v": "new"}, {"n": 2}, 200.0)])
    # one sent earlier, taken later (redelivered, or caught up after a partition)
    store.record_heartbeats([Heartbeat("edge-a", {"v": "old"}, {"n": 1}, 150.0)])
    node = store.get_node("edge-a")
    assert node is not None
    assert (node.last_seen_s, node.labels, node.status) == (200.0, {"v": "new"}, {"n": 2})


def test_a_batch_of_heartbeats_is_checked_before_any_is_written(store: ControlStore) -> None:
    good = Heartbeat("edge-a", {}, {}, 1.0)
    with pytest.raises(ConfigError, match=r"heartbeat\.node"):
        store.record_heartbeats([good, Heartbeat("", {}, {}, 1.0)])
    with pytest.raises(ConfigError, match="labels"):
        store.record_heartbeats([good, Heartbeat("edge-b", {"site": 3}, {}, 1.0)])  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="status"):
        store.record_heartbeats([good, Heartbeat("edge-b", {}, {"x": {1, 2}}, 1.0)])
    with pytest.raises(ConfigError, match="at_s"):
        store.record_heartbeats([good, Heartbeat("edge-b", {}, {}, float("nan"))])
    assert store.list_nodes() == []


def test_forget_drops_the_node_and_its_desired_versions(store: ControlStore) -> None:
    store.record_heartbeats([Heartbeat(n, {}, {}, 1.0) for n in ("edge-a", "edge-b")])
    store.apply(Change(desired=[("edge-a", "m", "v1"), ("edge-b", "m", "v1")]))
    assert store.forget_node("edge-a") is True
    assert store.forget_node("edge-a") is False
    assert store.get_node("edge-a") is None
    assert store.all_desired() == {"edge-b": {"m": "v1"}}
    assert [n.node for n in store.list_nodes()] == ["edge-b"]


def test_desired_set_clear_and_overwrite_in_one_change(store: ControlStore) -> None:
    store.apply(Change(desired=[("a", "m", "v1"), ("a", "k", "v1"), ("b", "m", "v1")]))
    seqs = store.apply(Change(
        desired=[("a", "m", "v2"), ("c", "m", "v2"), ("b", "m", "v3")],
        cleared=[("a", "k"), ("b", "m"), ("z", "never-set")],
        audit=[_entry("desired.set", rollout=None, nodes=["a", "b", "c"])],
    ))  # fmt: skip
    assert seqs == [1]
    # a pair both cleared and set ends up set: clears go first
    assert store.all_desired() == {"a": {"m": "v2"}, "b": {"m": "v3"}, "c": {"m": "v2"}}
    assert store.desired_of("a") == {"m": "v2"}
    assert store.desired_of("nobody") == {}
    assert store.apply(Change()) == []


def test_a_change_that_cannot_be_encoded_writes_nothing(store: ControlStore) -> None:
    store.apply(Change(desired=[("a", "m", "v1")]))
    for detail in ({"evidence": object()}, {1: "not a str key"}):
        with pytest.raises(ConfigError, match="detail"):
            store.apply(Change(
                rollout=_rollout("r1", "m", "running"),
                desired=[("a", "m", "v2"), ("b", "m", "v2")],
                cleared=[("a", "m")],
                audit=[_entry("rollout.start"), AuditEntry(1.0, "control", "x", "r1", detail)],  # type: ignore[arg-type]
            ))  # fmt: skip
    with pytest.raises(ConfigError, match=r"desired\.ref"):
        store.apply(Change(rollout=_rollout("r1", "m", "running"), desired=[("a", "m", "")]))
    assert store.get_rollout("r1") is None
    assert store.all_desired() == {"a": {"m": "v1"}}
    assert store.audit() == []


def _refuse_boom(url: str) -> None:
    """A trigger that fails the insert of an audit entry whose action is 'boom': a failure
    inside the transaction, after the rollout and desired rows are written."""
    if url.startswith("postgresql://"):
        _raw(url, "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$"
                  " BEGIN IF NEW.action = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF;"
                  " RETURN NEW; END $$")  # fmt: skip
        _raw(url, "CREATE TRIGGER refuse_boom BEFORE INSERT ON control_audit"
                  " FOR EACH ROW EXECUTE FUNCTION refuse_boom()")  # fmt: skip
    else:
        _raw(url, "CREATE TRIGGER refuse_boom BEFORE INSERT ON control_audit"
                  " WHEN NEW.action = 'boom'"
                  " BEGIN SELECT RAISE(ABORT, 'boom refused'); END")  # fmt: skip


def test_a_change_that_fails_half_way_is_rolled_back(store: ControlStore, url: str) -> None:
    store.apply(Change(rollout=_rollout("r0", "m", "running"), desired=[("a", "m", "v1")],
                       audit=[_entry("rollout.start", "r0")]))  # fmt: skip
    _refuse_boom(url)
    with pytest.raises(TierwiseError, match="boom refused") as failed:
        store.apply(Change(
            rollout=_rollout("r0", "m", "failed", at_s=9.0),
            desired=[("b", "m", "v2")],
            cleared=[("a", "m")],
            audit=[_entry("rollout.rollback", "r0"), _entry("boom", "r0")],
        ))  # fmt: skip
    assert not isinstance(failed.value, ConfigError)
    assert store.get_rollout("r0") == _rollout("r0", "m", "running")
    assert store.all_desired() == {"a": {"m": "v1"}}
    assert [e.action for e in store.audit()] == ["rollout.start"]
    # the store goes on: the next change is written, and seqs have no gap
    assert store.apply(Change(audit=[_entry("rollout.pause", "r0")])) == [2]


def test_audit_seqs_increase_and_filter(store: ControlStore) -> None:
    assert store.apply(Change(audit=[_entry("rollout.start", "r1", step=0),
                                     _entry("rollout.start", "r2")])) == [1, 2]  # fmt: skip
    assert store.apply(Change(audit=[_entry("rollout.promote", "r1", step=1)])) == [3]
    assert store.apply(Change(audit=[_entry("desired.set", None, node="a")])) == [4]
    everything = store.audit()
    assert [e.seq for e in everything] == [1, 2, 3, 4]
    assert everything[2] == AuditEntry(1000.0, "control", "rollout.promote", "r1", {"step": 1}, 3)
    assert everything[3].to_dict() == {"seq": 4, "at_s": 1000.0, "actor": "control",
                                       "action": "desired.set", "rollout": None,
                                       "detail": {"node": "a"}}  # fmt: skip
    assert [e.seq for e in store.audit(rollout="r1")] == [1, 3]
    assert [e.seq for e in store.audit(rollout="r1", after_seq=1)] == [3]
    assert [e.seq for e in store.audit(after_seq=2)] == [3, 4]
    assert [e.seq for e in store.audit(after_seq=1, limit=2)] == [2, 3]
    assert store.audit(rollout="nobody") == []
    with pytest.raises(ConfigError, match="limit"):
        store.audit(limit=0)
    with pytest.raises(ConfigError, match="after_seq"):
        store.audit(after_seq=-1)


def test_rollouts_are_listed_newest_first(store: ControlStore) -> None:
    store.apply(Change(rollout=_rollout("r1", "m", "running")))
    store.apply(Change(rollout=_rollout("r2", "k", "succeeded")))
    store.apply(Change(rollout=_rollout("r3", "m", "paused")))
    store.apply(Change(rollout=_rollout("r4", "m", "aborted")))
    # replacing a rollout changes its document, not its place
    replaced = RolloutRow("r1", "m", "running", {"stage": 2, "nested": {"a": [1.5, None]}}, 50.0)
    store.apply(Change(rollout=replaced))
    assert store.get_rollout("r1") == replaced
    assert store.get_rollout("nobody") is None
    assert [r.id for r in store.list_rollouts()] == ["r4", "r3", "r2", "r1"]
    assert {"running", "paused"} == ACTIVE_STATES
    assert [r.id for r in store.list_rollouts(active_only=True)] == ["r3", "r1"]
    assert [r.id for r in store.list_rollouts(bundle="m")] == ["r4", "r3", "r1"]
    assert [r.id for r in store.list_rollouts(active_only=True, bundle="k")] == []
    assert [r.id for r in store.list_rollouts(active_only=True, bundle="m")] == ["r3", "r1"]


def test_the_lease_goes_to_one_holder_until_it_expires(store: ControlStore) -> None:
    assert store.acquire_lease("a", ttl_s=10, now_s=100.0)
    assert not store.acquire_lease("b", ttl_s=10, now_s=105.0)
    assert store.acquire_lease("a", ttl_s=10, now_s=108.0)  # renewed until 118
    assert not store.acquire_lease("b", ttl_s=10, now_s=115.0)
    assert store.acquire_lease("b", ttl_s=10, now_s=118.0)  # expired: b takes over
    assert not store.acquire_lease("a", ttl_s=10, now_s=119.0)
    store.release_lease("a")  # not a's to give
    assert not store.acquire_lease("a", ttl_s=10, now_s=120.0)
    store.release_lease("b")
    assert store.acquire_lease("a", ttl_s=10, now_s=120.0)
    for holder, ttl_s in (("", 10.0), ("a", 0.0), ("a", float("inf"))):
        with pytest.raises(ConfigError):
            store.acquire_lease(holder, ttl_s=ttl_s, now_s=121.0)


def _fill(store: ControlStore) -> None:
    store.record_heartbeats([Heartbeat("edge-a", {"site": "x"}, {"up": True}, 5.0)])
    store.record_heartbeats([Heartbeat("edge-a", {"site": "y"}, {"up": False}, 7.0)])
    store.apply(Change(rollout=_rollout("r1", "m", "running"), desired=[("edge-a", "m", "v2")],
                       audit=[_entry("rollout.start", "r1", why="test")]))  # fmt: skip
    assert store.acquire_lease("replica-1", 30.0, 100.0)


def _check_filled(store: ControlStore) -> None:
    assert store.get_node("edge-a") == NodeRecord("edge-a", {"site": "y"}, {"up": False}, 5.0, 7.0)
    assert store.get_rollout("r1") == _rollout("r1", "m", "running")
    assert store.all_desired() == {"edge-a": {"m": "v2"}}
    assert store.audit() == [AuditEntry(1000.0, "control", "rollout.start", "r1",
                                        {"why": "test"}, 1)]  # fmt: skip
    assert not store.acquire_lease("replica-2", 30.0, 110.0)
    assert store.apply(Change(audit=[_entry("rollout.pause")])) == [2]


def test_data_survives_close_and_reopen(url: str) -> None:
    first = open_control_store(url)
    _fill(first)
    first.close()
    first.close()  # closing twice is harmless
    with pytest.raises(TierwiseError):
        first.list_nodes()
    again = open_control_store(url)
    try:
        _check_filled(again)
    finally:
        again.close()


def test_two_store_objects_see_each_others_writes(url: str) -> None:
    one, two = open_control_store(url), open_control_store(url)
    try:
        _fill(one)
        _check_filled(two)
        assert [e.seq for e in one.audit()] == [1, 2]
        one.record_heartbeats([Heartbeat("edge-a", {}, {}, 9.0)])
        record = two.get_node("edge-a")
        assert record is not None
        assert (record.registered_s, record.last_seen_s) == (5.0, 9.0)
    finally:
        one.close()
        two.close()


def test_concurrent_decisions_get_distinct_consecutive_seqs(url: str) -> None:
    stores = [open_control_store(url) for _ in range(4)]
    seqs: list[int] = []

    def decide(i: int) -> None:
        for n in range(15):
            got = stores[i].apply(Change(
                rollout=_rollout(f"r{i}-{n}", "m", "running"),
                desired=[(f"node-{i}", "m", f"v{n}")],
                audit=[_entry("step", f"r{i}-{n}"), _entry("step.evidence", f"r{i}-{n}")],
            ))  # fmt: skip
            seqs.extend(got)

    try:
        _run_threads(len(stores), decide)
        assert sorted(seqs) == list(range(1, 121))
        assert [e.seq for e in stores[0].audit(limit=500)] == list(range(1, 121))
        assert len(stores[1].list_rollouts()) == 60
        assert stores[2].all_desired() == {f"node-{i}": {"m": "v14"} for i in range(4)}
    finally:
        for s in stores:
            s.close()


def test_one_replica_wins_a_race_for_the_lease(url: str) -> None:
    stores = [open_control_store(url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    won: list[int] = []

    def race(i: int) -> None:
        barrier.wait(timeout=30)
        if stores[i].acquire_lease(f"replica-{i}", 15.0, 1000.0):
            won.append(i)

    try:
        _run_threads(len(stores), race)
        assert len(won) == 1
        (winner,) = won
        assert stores[winner].acquire_lease(f"replica-{winner}", 15.0, 1010.0)
    finally:
        for s in stores:
            s.close()


def test_heartbeats_from_many_threads(store: ControlStore) -> None:
    def beat(i: int) -> None:
        for n in range(20):
            store.record_heartbeats(
                [Heartbeat(f"node-{k}", {"t": str(i)}, {"n": n}, float(n)) for k in range(30)]
            )

    _run_threads(4, beat)
    nodes = store.list_nodes()
    assert len(nodes) == 30
    assert {(n.registered_s, n.last_seen_s) for n in nodes} == {(0.0, 19.0)}


def test_a_newer_schema_is_refused(url: str) -> None:
    open_control_store(url).close()
    _raw(url, "UPDATE control_schema SET version = 99")
    with pytest.raises(ConfigError, match="schema version 1 or older, got 99"):
        open_control_store(url)


# -- SQLite only ---------------------------------------------------------------------------

CHILD = """
import sys
from tierwise.control.store import AuditEntry, Change, Heartbeat, RolloutRow
from tierwise.control.store_sqlite import SqliteControlStore

store = SqliteControlStore(sys.argv[1])
i = int(sys.argv[2])
pad = "x" * 4000
while True:
    node = f"n{i}"
    store.apply(Change(
        rollout=RolloutRow(f"r{i}", "m", "running", {"i": i, "pad": pad}, float(i)),
        desired=[(node, "m", f"v{i}"), (node, "k", f"v{i}")],
        cleared=[(f"n{i - 1}", "gone")],
        audit=[AuditEntry(float(i), "control", "rollout.start", f"r{i}", {"node": node}),
               AuditEntry(float(i), "control", "desired.set", f"r{i}", {"node": node, "pad": pad})],
    ))
    store.record_heartbeats([Heartbeat(f"h{k}", {}, {"i": i}, float(i)) for k in range(40)])
    if i % 25 == 0:
        print(i, flush=True)
    i += 1
"""


def _check_consistent(path: Path) -> int:
    """Every decision wholly there or wholly absent; the number of decisions found."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = open_control_store(str(path))
    try:
        entries = store.audit(limit=100_000)
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        by_rollout: dict[str, set[str]] = {}
        for entry in entries:
            by_rollout.setdefault(str(entry.rollout), set()).add(entry.action)
        assert all(actions == {"rollout.start", "desired.set"} for actions in by_rollout.values())
        rollouts = {r.id for r in store.list_rollouts()}
        assert rollouts == set(by_rollout)
        desired = store.all_desired()
        assert set(desired) == {f"n{r[1:]}" for r in rollouts}
        assert all(d == {"m": f"v{n[1:]}", "k": f"v{n[1:]}"} for n, d in desired.items())
        beats = {(n.last_seen_s, n.status["i"]) for n in store.list_nodes()}
        assert len(beats) <= 1  # a batch of heartbeats is wholly written or not at all
        return len(rollouts)
    finally:
        store.close()


def test_sqlite_survives_kill_9_in_a_stream_of_decisions(tmp_path: Path) -> None:
    path = tmp_path / "control.db"
    found = 0
    for round_ in range(4):
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(found)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as child:  # fmt: skip
            try:
                assert child.stdout is not None
                for _ in range(2):  # at least 25 decisions written by this child
                    line = child.stdout.readline()
                    assert line, child.stderr.read() if child.stderr else ""
                time.sleep(0.01 * (round_ * 7 % 5))
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
        now = _check_consistent(path)
        assert now >= found + 25
        found = now


def test_sqlite_creates_the_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "control.db"
    open_control_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM control_schema").fetchall() == [(1,)]


def test_sqlite_url_takes_the_path_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_control_store("sqlite:///rel/control.db").close()
    assert (tmp_path / "rel" / "control.db").is_file()


def test_sqlite_file_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(ConfigError, match="a SQLite file that can be opened"):
        open_control_store(str(tmp_path / "plain-file" / "control.db"))


# -- opening by URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", "   ", "sqlite://", "sqlite:///", "sqlite:control.db", "mysql://u@h:3306/db"]
)
def test_bad_urls_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError) as refused:
        open_control_store(bad)
    assert refused.value.parameter == "store"
    assert STORE_URL_EXPECTED in str(refused.value)
    assert STORE_URL_EXPECTED == (
        "a SQLite file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def test_unknown_scheme_does_not_show_the_password() -> None:
    with pytest.raises(ConfigError) as refused:
        open_control_store("mysql://admin:hunter2-secret@db.example:3306/fleet")
    assert "hunter2" not in str(refused.value)
    assert "admin:***@db.example:3306" in str(refused.value)
    assert redact_dsn("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert redact_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_unreachable_postgres_names_the_address_not_the_password(scheme: str) -> None:
    pytest.importorskip("psycopg")
    port = free_port()  # nothing listens there
    with pytest.raises(ConfigError) as refused:
        open_control_store(f"{scheme}://fleet:s3cret-pw@127.0.0.1:{port}/control")
    message = str(refused.value)
    assert f"a PostgreSQL server reachable at 127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "s3cret" not in message


def test_postgres_url_without_psycopg_says_how_to_install_it(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if psycopg were not installed
        "from tierwise.control.store_open import open_control_store\n"
        "from tierwise.errors import ConfigError\n"
        "try:\n"
        "    open_control_store('postgresql://u@127.0.0.1:1/db')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    assert "pip install 'tierwise[postgres]'" in out


def test_postgres_store_reconnects_after_the_server_drops_it(postgres_dsn: str) -> None:
    store = open_control_store(postgres_dsn)
    try:
        store.record_heartbeats([Heartbeat("edge-a", {}, {}, 1.0)])
        _raw(postgres_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE application_name = 'tierwise-control'")  # fmt: skip
        # the call that finds the connection gone fails, naming the server...
        with pytest.raises(TierwiseError, match=r"postgresql 127\.0\.0\.1:\d+/t\d+\): terminating"):
            store.list_nodes()
        # ...and the next one runs on a new connection
        assert [n.node for n in store.list_nodes()] == ["edge-a"]
    finally:
        store.close()
