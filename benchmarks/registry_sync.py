"""Pull, verify and activate a ~50 MB bundle from a local OCI registry.

1. Start the CNCF distribution registry (Debian's ``docker-registry``) on loopback with a
   throwaway storage folder; make a bundle of one ~50 MB ONNX model
   (``tierwise.bench.synthetic.dense_stack_model``) and push it, signed.
2. In one run, interleaved ``--rounds`` times, each into a fresh folder:
   - a plain streaming HTTP GET of the model blob from the registry, written to a file
     (requests, 1 MiB chunks): the baseline;
   - the same blob through the OCI store's transport into a file with the store's
     durability (write-back hints, fsync) but no checks: the pull minus verification;
   - ``tierwise.registry.pull`` of the bundle into a fresh local store: resolve the tag,
     fetch the manifest, check the signature, stream the blob through sha256 into a temp
     file, fsync, check size and digest, rename, index;
   - ``tierwise.registry.verify`` of what was pulled: the signature and a full re-read and
     re-hash of the blob, which is the whole cost of verification.
   The same three transfers are then measured over a paced 1 Gbit/s link
   (``--link-mb-per-s``, a proxy in front of the registry), as an edge box would see its
   uplink; those figures are reported beside the loopback ones.
   Around each transfer it reads the CPU time this process and the registry spent
   (``cpu_ms``): they share the machine's cores, so ``pull_floor_s``, the pull's CPU time
   spread over every core, is the shortest a pull could take here however well its
   steps overlapped, and ``best_possible_pull_vs_plain_get`` the ratio that allows.
   ``sha256_s`` is one thread hashing the blob once, from memory.
3. One full edge-agent sync (pull, verify, lay out, load and warm in onnxruntime, hot swap)
   into a fresh node, timed end to end.

Targets: pull throughput >= 80% of the plain GET's (medians); verification adds <= 25% to
the pull time (verified pull against the unchecked transfer). ``verify_s``, a full re-read
and re-hash after the fact, is reported too. Prints one JSON line; exits 1 when a target is missed.
Usage: python benchmarks/registry_sync.py [--rounds 5] [--width 2048] [--depth 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
import requests
from harness import LinkProxy, free_port

from tierwise.agent import AgentSettings, EdgeAgent
from tierwise.bench.synthetic import dense_stack_model
from tierwise.registry import (
    LocalStore,
    OciStore,
    Signer,
    TrustStore,
    create_bundle,
    generate_keys,
    pull,
    push,
    read_bundle_dir,
    verify,
)


def _registry(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("docker-registry")
    if binary is None:
        sys.stderr.write(
            "this benchmark needs Debian's docker-registry: apt-get install docker-registry\n"
        )
        raise SystemExit(2)
    port = free_port()
    config = tmp / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("docker-registry did not start")
        time.sleep(0.05)


class _DurableSink:
    """What a pull does with the bytes, minus the checks: write, hint write-back, fsync."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")
        self.written = 0
        self.synced = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.written += len(chunk)
        if self.written - self.synced >= 8 * 1024 * 1024:
            self.file.flush()
            os.posix_fadvise(self.file.fileno(), self.synced, self.written - self.synced,
                             os.POSIX_FADV_DONTNEED)  # fmt: skip
            self.synced = self.written

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _unchecked(store: OciStore, digest: str, size: int, out: Path) -> float:
    started = time.perf_counter()
    sink = _DurableSink(out)
    store.read_blob("big", digest, size, sink)
    sink.close()
    return time.perf_counter() - started


T = TypeVar("T")


class _Cpu:
    """CPU seconds this process and the registry spent, summed per kind of transfer: the
    two share this machine's cores, which bounds how fast any pull that hashes can be."""

    def __init__(self, registry_pid: int) -> None:
        self.pid = registry_pid
        self.seconds: dict[str, list[tuple[float, float]]] = {}

    def _registry_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def measure(self, kind: str, run: Callable[[], T]) -> T:
        client, registry = time.process_time(), self._registry_s()
        result = run()
        self.seconds.setdefault(kind, []).append(
            (time.process_time() - client, self._registry_s() - registry)
        )
        return result

    def median_ms(self, kind: str) -> dict[str, float]:
        rows = self.seconds[kind]
        return {
            "client": round(statistics.median(r[0] for r in rows) * 1000, 1),
            "registry": round(statistics.median(r[1] for r in rows) * 1000, 1),
        }


def _plain_get(url: str, out: Path) -> float:
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=60) as response, out.open("wb") as f:
        response.raise_for_status()
        for chunk in response.iter_content(1024 * 1024):
            f.write(chunk)
    return time.perf_counter() - started


async def _agent_sync(settings: AgentSettings) -> tuple[float, str, str | None]:
    agent = EdgeAgent(settings)
    await agent.server.startup()
    try:
        started = time.perf_counter()
        result = await agent.sync_now()
        return time.perf_counter() - started, result.result, result.error
    finally:
        await agent.server.shutdown()
        agent.store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--link-mb-per-s", type=float, default=125.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tierwise-registry-bench-") as tmp_name:
        tmp = Path(tmp_name)
        process, port = _registry(tmp)
        try:
            model = dense_stack_model(
                tmp / "edge.onnx", width=args.width, depth=args.depth, in_width=8, out_width=4
            )
            keys = generate_keys(tmp / "keys", "bench")
            manifest = create_bundle([model], tmp / "bundle", name="big", version="1")
            store = OciStore(f"oci://127.0.0.1:{port}/bench", plain_http=True, timeout_s=60)
            push(read_bundle_dir(tmp / "bundle"), store, Signer.from_file(keys.private_path),
                 tags=["stable"])  # fmt: skip
            trust = TrustStore.from_paths([keys.public_path])
            variant = manifest.variants[0]
            size_mb = variant.size_bytes / 1e6
            blob_url = f"http://127.0.0.1:{port}/v2/bench/big/blobs/{variant.digest}"

            gets, raws, pulls, verifies, hashes = [], [], [], [], []
            cpu = _Cpu(process.pid)
            for i in range(args.rounds):
                out = tmp / f"get-{i}.bin"
                gets.append(cpu.measure("plain_get", lambda out=out: _plain_get(blob_url, out)))
                blob = out.read_bytes()
                started = time.perf_counter()
                hashlib.sha256(blob)
                hashes.append(time.perf_counter() - started)
                out.unlink()
                raws.append(
                    cpu.measure(
                        "unchecked",
                        lambda: _unchecked(store, variant.digest, variant.size_bytes, tmp / "raw"),
                    )
                )
                (tmp / "raw").unlink()
                node = LocalStore(tmp / f"node-{i}")
                started = time.perf_counter()
                report = cpu.measure(
                    "pull", lambda node=node: pull(store, "big", "stable", node, trust)
                )
                pulls.append(time.perf_counter() - started)
                started = time.perf_counter()
                verify(node, "big", "1", trust)
                verifies.append(time.perf_counter() - started)
                node.close()
                shutil.rmtree(tmp / f"node-{i}")
            assert report.fetched_bytes == variant.size_bytes  # internal check of the run

            proxy = LinkProxy(port, args.link_mb_per_s)
            linked = OciStore(f"oci://127.0.0.1:{proxy.port}/bench", plain_http=True, timeout_s=60)
            link_gets, link_raws, link_pulls = [], [], []
            for i in range(max(2, args.rounds // 2)):
                link_url = f"http://127.0.0.1:{proxy.port}/v2/bench/big/blobs/{variant.digest}"
                link_gets.append(_plain_get(link_url, tmp / "get.bin"))
                (tmp / "get.bin").unlink()
                link_raws.append(
                    _unchecked(linked, variant.digest, variant.size_bytes, tmp / "raw")
                )
                (tmp / "raw").unlink()
                node = LocalStore(tmp / f"link-{i}")
                started = time.perf_counter()
                pull(linked, "big", "stable", node, trust)
                link_pulls.append(time.perf_counter() - started)
                node.close()
                shutil.rmtree(tmp / f"link-{i}")
            proxy.close()

            (tmp / "desired.yaml").write_text("ref: stable\n")
            settings = AgentSettings.model_validate({
                "state_dir": tmp / "agent", "port": 0, "bundle": "big",
                "serve": [{"variant": variant.name}],
                "registry": {"store": f"oci://127.0.0.1:{port}/bench", "plain_http": True,
                             "trusted_keys": [keys.public_path]},
                "desired_file": tmp / "desired.yaml",
            })  # fmt: skip
            sync_s, sync_result, sync_error = asyncio.run(_agent_sync(settings))
        finally:
            process.terminate()
            process.wait(timeout=10)

    cores = len(os.sched_getaffinity(0))
    pull_cpu = cpu.median_ms("pull")
    # Client and registry share the cores: even with every step overlapped perfectly, a
    # pull cannot finish sooner than the CPU time it took spread over all of them.
    pull_floor_s = (pull_cpu["client"] + pull_cpu["registry"]) / 1000 / cores
    get_s = statistics.median(gets)
    raw_s = statistics.median(raws)
    pull_s = statistics.median(pulls)
    verify_s = statistics.median(verifies)
    pull_vs_get = get_s / pull_s
    verification_adds = pull_s / raw_s - 1.0
    targets = {
        "pull_throughput_vs_plain_get_ge_0.80": pull_vs_get >= 0.80,
        "verification_adds_le_0.25": verification_adds <= 0.25,
        "agent_sync_activated": sync_result == "activated",
    }
    print(
        orjson.dumps(
            {
                "benchmark": "registry_sync",
                "bundle_mb": round(size_mb, 1),
                "rounds": args.rounds,
                "plain_get_s": round(get_s, 4),
                "plain_get_mb_per_s": round(size_mb / get_s, 1),
                "pull_s": round(pull_s, 4),
                "pull_mb_per_s": round(size_mb / pull_s, 1),
                "pull_vs_plain_get": round(pull_vs_get, 3),
                "unchecked_transfer_s": round(raw_s, 4),
                "verification_adds": round(verification_adds, 3),
                "verify_s": round(verify_s, 4),
                "cpu_ms": {kind: cpu.median_ms(kind) for kind in cpu.seconds},
                "cores": cores,
                "sha256_s": round(statistics.median(hashes), 4),
                "pull_floor_s": round(pull_floor_s, 4),
                "best_possible_pull_vs_plain_get": round(get_s / pull_floor_s, 3),
                "agent_sync_s": round(sync_s, 3),
                "agent_sync_result": sync_result,
                "agent_sync_error": sync_error,
                "all_get_s": [round(x, 4) for x in gets],
                "all_pull_s": [round(x, 4) for x in pulls],
                "all_unchecked_s": [round(x, 4) for x in raws],
                "link": {
                    "mb_per_s": args.link_mb_per_s,
                    "plain_get_s": round(statistics.median(link_gets), 4),
                    "unchecked_transfer_s": round(statistics.median(link_raws), 4),
                    "pull_s": round(statistics.median(link_pulls), 4),
                    "pull_vs_plain_get": round(
                        statistics.median(link_gets) / statistics.median(link_pulls), 3
                    ),
                    "verification_adds": round(
                        statistics.median(link_pulls) / statistics.median(link_raws) - 1.0, 3
                    ),
                },
                "targets": targets,
                "ok": all(targets.values()),
            }
        ).decode()
    )
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
