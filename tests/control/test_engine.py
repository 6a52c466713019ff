"""The rollout engine on a simulated fleet with a controlled clock: a real SQLite store, a
real signed local registry, and nodes that follow their desired versions and heartbeat
counters whose latency depends on the version they serve.

Covers the whole life of a rollout (stages, gates, threshold, rollback by digest, resume
after a restart, unreachable nodes, a cohort that never converges, pause, resume,
promote, abort) and every refusal that must leave the store untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from registry_helpers import make_keys, model_file, publish
from tierwise.control.desired import DesiredBook
from tierwise.control.engine import RolloutEngine
from tierwise.control.resolve import Resolver
from tierwise.control.settings import RegistrySettings
from tierwise.control.sources import HistorySource
from tierwise.control.spec import RolloutRequest
from tierwise.control.store import Heartbeat
from tierwise.control.store_sqlite import SqliteControlStore
from tierwise.control.window import Counters, History
from tierwise.errors import BundleNotFoundError, ConfigError, RolloutError, SignatureError
from tierwise.registry import LocalStore, create_bundle, read_bundle_dir
from tierwise.registry.store import StoredBundle

BUNDLE = "digits"
BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.05)


@dataclass
class SimNode:
    name: str
    labels: dict[str, str]
    digest: str | None
    version: str | None
    requests: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    alive: bool = True
    obeys: bool = True


class SimFleet:
    """Nodes that take their desired version at the next beat and report counters."""

    def __init__(self, tmp: Path, nodes: int = 8, canaries: int = 2) -> None:
        root = tmp / "registry"
        registry = LocalStore(root, create=True)
        self.keys = make_keys(tmp)
        self.registry = registry
        self.versions: dict[str, str] = {}
        for version, seed in (("1", 1), ("2", 2), ("3-slow", 3)):
            manifest = publish(registry, tmp, self.keys, version, {"small": seed}, name=BUNDLE)
            self.versions[manifest.digest] = version
        self.digest = {v: d for d, v in self.versions.items()}
        self.slow = {self.digest["3-slow"]}
        self.now = 1_000_000.0
        self.store = SqliteControlStore(tmp / "control.db")
        self.history = History(max_samples=32)
        self.resolver = Resolver(
            RegistrySettings(store=str(root), trusted_keys=[self.keys.public_path]), {}
        )
        self.nodes = [
            SimNode(
                f"n{i}",
                {"hw": "pi5", "site": "ab"[i % 2]} | ({"canary": "true"} if i < canaries else {}),
                self.digest["1"],
                "1",
            )
            for i in range(nodes)
        ]
        self.engine = self.new_engine()
        self.beat()

    def new_engine(self) -> RolloutEngine:
        return RolloutEngine(
            self.store,
            resolver=self.resolver,
            source=HistorySource(self.history),
            desired=DesiredBook(self.store.all_desired()),
            stale_s=2.0,
            clock=lambda: self.now,
        )

    def beat(self) -> None:
        beats = []
        for node in self.nodes:
            if not node.alive:
                continue
            wanted = self.engine.desired.of(node.name).get(BUNDLE)
            if node.obeys and wanted is not None and wanted != node.digest:
                node.digest, node.version = wanted, self.versions[wanted]
            if node.digest is None:
                beats.append(Heartbeat(node.name, node.labels, {"bundles": {BUNDLE: {}}}, self.now))
                continue
            slow = node.digest in self.slow
            node.requests += 10
            took_s = 0.02 if slow else 0.0015  # 10 requests that each took this long
            for i in range(len(node.buckets)):
                if i == len(BOUNDS) or BOUNDS[i] >= took_s:
                    node.buckets[i] += 10
            counters = Counters(
                started_s=1.0, digest=node.digest, requests=node.requests, errors=0,
                latency_bounds_s=BOUNDS, latency_counts=tuple(node.buckets),
                energy_j=0.0, inferences=0, agree=0, disagree=0, routed=0, fallbacks=0,
            )  # fmt: skip
            self.history.add(node.name, BUNDLE, self.now, counters)
            status = {"bundles": {BUNDLE: {"version": node.version, "digest": node.digest,
                                           "ready": True}}}  # fmt: skip
            beats.append(Heartbeat(node.name, node.labels, status, self.now))
        self.store.record_heartbeats(beats)

    def run(self, seconds: float, step_s: float = 0.5) -> None:
        for _ in range(int(seconds / step_s)):
            self.now += step_s
            self.beat()
            self.engine.tick()

    def request(self, ref: str, **extra: object) -> RolloutRequest:
        doc = {"bundle": BUNDLE, "ref": ref, "selector": "hw=pi5", "stages": "canary,50,100",
               "interval_s": 2.0, "threshold": 2, "min_requests": 20} | extra  # fmt: skip
        return RolloutRequest.from_doc(doc)

    def serving(self) -> dict[str, str | None]:
        return {n.name: n.version for n in self.nodes}

    def actions(self, rollout: str) -> list[str]:
        return [e.action for e in self.store.audit(rollout=rollout)]


@pytest.fixture
def sim(tmp_path: Path) -> SimFleet:
    return SimFleet(tmp_path)


def test_a_good_version_goes_through_every_stage(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2"), "ops")
    assert sorted(rollout.cohort) == ["n0", "n1"]
    sim.run(30)
    done = sim.engine.get(rollout.id)
    assert done.state == "succeeded"
    assert set(sim.serving().values()) == {"2"}
    stages = [e.detail["stage"] for e in sim.store.audit(rollout=rollout.id)
              if e.action == "rollout.stage"]  # fmt: skip
    assert stages == ["canary", "50%", "100%"]
    assert sim.actions(rollout.id)[-1] == "rollout.succeeded"


def test_a_slow_version_is_rolled_back_by_digest_from_the_canary_pool(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("3-slow"), "ops")
    seen_outside = set()
    for _ in range(40):
        sim.run(0.5)
        seen_outside |= {n.name for n in sim.nodes[2:] if n.version == "3-slow"}
    done = sim.engine.get(rollout.id)
    assert done.state == "failed"
    assert "p99_ratio" in (done.reason or "")
    assert "2 analyses in a row" in (done.reason or "")
    assert seen_outside == set()
    assert set(sim.serving().values()) == {"1"}
    assert sim.engine.desired.of("n0") == {BUNDLE: sim.digest["1"]}
    rollback = [e for e in sim.store.audit(rollout=rollout.id) if e.action == "rollout.rollback"]
    assert rollback[0].actor == "control"
    assert rollback[0].detail["nodes"] == {"n0": "1", "n1": "1"}
    failing = [r for r in rollback[0].detail["analysis"]["results"] if r["gate"] == "p99_ratio"]
    assert failing[0]["verdict"] == "fail"
    assert failing[0]["canary"] > failing[0]["baseline"]
    assert sim.store.get_rollout(rollout.id).state == "failed"  # type: ignore[union-attr]


def test_a_node_that_has_not_said_its_version_goes_back_to_the_fleets(sim: SimFleet) -> None:
    node = sim.nodes[0]  # a canary that has not activated anything yet
    node.digest = node.version = None
    sim.beat()
    rollout = sim.engine.start(sim.request("3-slow"), "ops")
    assert rollout.baseline["n0"] == {"version": "1", "digest": sim.digest["1"]}
    sim.run(20)
    assert sim.engine.get(rollout.id).state == "failed"
    assert node.version == "1"


def test_a_rollout_right_after_a_rollback_goes_back_to_what_nodes_were_told(
    sim: SimFleet,
) -> None:
    first = sim.engine.start(sim.request("3-slow"), "ops")
    for _ in range(40):
        sim.run(0.5)
        if sim.engine.get(first.id).state == "failed":
            break
    assert sim.nodes[0].version == "3-slow"  # told to go back; its heartbeat says otherwise
    second = sim.engine.start(sim.request("2"), "ops")
    assert second.baseline["n0"] == {"version": "1", "digest": sim.digest["1"]}
    sim.engine.abort(second.id, "ops")
    sim.run(1)
    assert set(sim.serving().values()) == {"1"}


def test_one_failed_analysis_below_the_threshold_does_not_roll_back(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("3-slow", threshold=3), "ops")
    sim.run(5.5)  # converged, and two failed analyses
    state = sim.engine.get(rollout.id)
    assert state.state == "running"
    assert state.failures["p99_ratio"] == 2
    sim.run(2.5)
    assert sim.engine.get(rollout.id).state == "failed"


def test_a_restarted_engine_resumes_mid_stage(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2"), "ops")
    sim.run(6)
    assert sim.engine.get(rollout.id).stage >= 1
    sim.engine = sim.new_engine()  # what a restarted process builds from the store
    sim.history = History(max_samples=32)  # counters are in memory: they start afresh
    sim.engine.source = HistorySource(sim.history)
    sim.run(30)
    assert sim.engine.get(rollout.id).state == "succeeded"
    assert sim.actions(rollout.id).count("rollout.start") == 1


def test_an_unreachable_node_is_neither_healthy_nor_failed_and_converges_later(
    sim: SimFleet,
) -> None:
    late = sim.nodes[-1]
    rollout = sim.engine.start(sim.request("2"), "ops")
    sim.run(3)
    late.alive = False
    sim.run(30)
    assert sim.engine.get(rollout.id).state == "succeeded"
    assert late.version == "1"
    assert sim.engine.desired.of(late.name) == {BUNDLE: sim.digest["2"]}
    late.alive = True
    sim.run(1)
    assert late.version == "2"


def test_a_cohort_that_never_converges_is_rolled_back(sim: SimFleet) -> None:
    sim.nodes[0].obeys = False
    rollout = sim.engine.start(sim.request("2", converge_timeout_s=5.0), "ops")
    sim.run(10)
    done = sim.engine.get(rollout.id)
    assert done.state == "failed"
    assert "did not serve 2 within 5 s" in (done.reason or "")
    assert "n0" in (done.reason or "")
    assert sim.nodes[1].version == "1"


def test_pause_resume_promote_and_abort(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2"), "ops")
    sim.engine.pause(rollout.id, "ops")
    sim.run(10)
    paused = sim.engine.get(rollout.id)
    assert paused.state == "paused"
    assert paused.stage == 0
    sim.engine.resume(rollout.id, "ops")
    sim.engine.promote(rollout.id, "ops")
    sim.run(1)
    assert set(sim.serving().values()) == {"2"}
    assert sim.engine.get(rollout.id).state == "succeeded"
    with pytest.raises(RolloutError, match="it has succeeded"):
        sim.engine.abort(rollout.id, "ops")
    with pytest.raises(RolloutError, match=r"already runs .*nothing to roll out"):
        sim.engine.start(sim.request("2"), "ops")  # every node runs it: no cohort to judge

    second = sim.engine.start(sim.request("1"), "ops")
    sim.run(1)
    assert {sim.nodes[0].version, sim.nodes[1].version} == {"1"}
    sim.engine.abort(second.id, "ops", "changed my mind")
    sim.run(1)
    assert set(sim.serving().values()) == {"2"}
    entry = next(e for e in sim.store.audit(rollout=second.id) if e.action == "rollout.abort")
    assert entry.actor == "ops"
    assert entry.detail["reason"] == "changed my mind"


def _unsigned(sim: SimFleet, tmp: Path) -> None:
    source = model_file(tmp / "u", "small", seed=9)
    manifest = create_bundle([source], tmp / "ub", name=BUNDLE, version="9")
    bundle = read_bundle_dir(tmp / "ub")
    for digest, size in manifest.variants[0].blobs():
        sim.registry.put_blob(BUNDLE, digest, size, bundle.blob(digest))
    sim.registry.put_manifest(
        StoredBundle(BUNDLE, "9", manifest.digest, bundle.manifest_bytes, None), tags=[]
    )


def _other_key(sim: SimFleet, tmp: Path) -> None:
    keys = make_keys(tmp / "other")
    publish(sim.registry, tmp / "o", keys, "8", {"small": 8}, name=BUNDLE)


@pytest.mark.parametrize(
    ("change", "extra", "error", "words"),
    [
        (None, {"bundle": "nope"}, BundleNotFoundError, "nope"),
        (None, {"ref": "7"}, BundleNotFoundError, "7"),
        (_unsigned, {"ref": "9"}, SignatureError, "unsigned"),
        (_other_key, {"ref": "8"}, SignatureError, "key"),
        (None, {"selector": "hw=riscv"}, RolloutError, "matches no node"),
        (None, {"selector": "site=b", "canary_selector": "canary=yes"}, RolloutError, "canary"),
    ],
)
def test_refusals_move_nothing(
    sim: SimFleet, tmp_path: Path, change: object, extra: dict[str, str], error: type,
    words: str,
) -> None:  # fmt: skip
    if callable(change):
        change(sim, tmp_path)
    request = sim.request(extra.pop("ref", "2"), **extra)
    with pytest.raises(error, match=words):
        sim.engine.start(request, "ops")
    assert sim.store.list_rollouts() == []
    assert sim.store.all_desired() == {}
    assert sim.store.audit() == []


def test_overlapping_rollouts_are_refused(sim: SimFleet) -> None:
    first = sim.engine.start(sim.request("2"), "ops")
    with pytest.raises(RolloutError, match=first.id):
        sim.engine.start(sim.request("2", selector="site=a"), "ops")
    with pytest.raises(RolloutError, match=first.id):
        sim.engine.start(sim.request("3-slow"), "ops")
    assert len(sim.store.list_rollouts()) == 1


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"stages": "50,10"}, "stages"),
        ({"stages": "10,canary,100"}, "stages"),
        ({"stages": "canary,50"}, "stages"),
        ({"selector": "hw in pi5"}, "selector"),
        ({"gates": ["latency=2"]}, "gate"),
        ({"interval_s": 0}, "interval_s"),
        ({"threshold": 0}, "threshold"),
        ({"ref": "../../etc"}, "ref"),
        ({"stage_intervals_s": [1.0]}, "stage_intervals_s"),
    ],
)
def test_malformed_requests_name_the_field(doc: dict[str, object], field: str) -> None:
    base = {"bundle": BUNDLE, "ref": "2"}
    with pytest.raises(ConfigError, match=field):
        RolloutRequest.from_doc(base | doc)


def test_time_paused_before_the_cohort_converged_does_not_count(sim: SimFleet) -> None:
    sim.nodes[0].obeys = False  # the canary has not switched yet
    rollout = sim.engine.start(sim.request("2", converge_timeout_s=4.0), "ops")
    sim.engine.pause(rollout.id, "ops")
    sim.run(10)  # longer than the timeout, paused
    sim.nodes[0].obeys = True
    sim.engine.resume(rollout.id, "ops")
    sim.run(1)
    resumed = sim.engine.get(rollout.id)
    assert resumed.state == "running"
    assert resumed.serving_since_s is not None


def test_too_many_inconclusive_analyses_pause_the_rollout(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2", min_requests=10_000, max_inconclusive=3), "ops")
    sim.run(12)
    paused = sim.engine.get(rollout.id)
    assert paused.state == "paused"
    assert "3 analyses in a row had too few requests" in (paused.reason or "")
    assert "rollout.pause" in sim.actions(rollout.id)


def test_a_cohort_node_that_leaves_the_version_is_waited_for_again(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2", converge_timeout_s=3.0), "ops")
    sim.run(1.5)
    assert sim.engine.get(rollout.id).serving_since_s is not None
    node = sim.nodes[0]  # rolled back locally by hand, and keeps to it
    node.digest, node.version, node.obeys = sim.digest["1"], "1", False
    sim.run(1)
    waiting = sim.engine.get(rollout.id)
    assert waiting.serving_since_s is None
    assert "rollout.cohort" in sim.actions(rollout.id)
    sim.run(5)
    failed = sim.engine.get(rollout.id)
    assert failed.state == "failed"
    assert "did not serve 2" in (failed.reason or "")


def test_a_decision_on_a_stale_state_is_refused(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2"), "ops")
    stale = sim.engine.get(rollout.id)
    sim.engine.abort(rollout.id, "ops")
    stale.stage = 1
    with pytest.raises(RolloutError, match="changed meanwhile"):
        sim.engine.commit(stale)
    assert sim.engine.get(rollout.id).state == "aborted"


def test_a_replica_without_the_lease_decides_nothing(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2"), "ops")
    assert sim.store.acquire_lease("a", 60.0, sim.now)
    for _ in range(6):
        sim.now += 0.5
        sim.beat()
        sim.engine.tick(lease=("b", sim.now))
    assert sim.engine.get(rollout.id).serving_since_s is None
    sim.engine.tick(lease=("a", sim.now))
    assert sim.engine.get(rollout.id).serving_since_s is not None


def test_an_unknown_rollout_is_a_404(sim: SimFleet) -> None:
    with pytest.raises(RolloutError, match="no rollout") as caught:
        sim.engine.get("nope")
    assert caught.value.status_code == 404


def test_with_no_baseline_at_all_a_stage_passes_on_its_own_traffic(sim: SimFleet) -> None:
    rollout = sim.engine.start(sim.request("2", stages="100"), "ops")
    assert len(rollout.cohort) == len(sim.nodes)
    sim.run(8)
    done = sim.engine.get(rollout.id)
    assert done.state == "succeeded"
    verdicts = [e.detail["verdict"] for e in sim.store.audit(rollout=rollout.id)
                if e.action == "rollout.analysis"]  # fmt: skip
    assert verdicts[-1] == "pass (no baseline)"
