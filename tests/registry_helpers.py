"""Helpers for registry and agent tests: a real OCI registry (CNCF distribution, Debian's
``docker-registry``) on loopback, a TCP proxy that can slow down or drop connections,
keys and small bundles."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from binaries import require_binary
from server_helpers import free_port
from tierwise.bench.synthetic import dense_stack_model
from tierwise.registry import (
    BundleManifest,
    BundleStore,
    KeyPair,
    Signer,
    create_bundle,
    generate_keys,
    push,
    read_bundle_dir,
)


@dataclass
class OciRegistry:
    port: int
    storage: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, prefix: str = "tw") -> str:
        return f"oci://{self.host}/{prefix}"

    def blob_file(self, digest: str) -> Path:
        hexa = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"


@contextmanager
def oci_registry(
    tmp: Path, *, htpasswd: str | None = None, auth_config: str | None = None
) -> Iterator[OciRegistry]:
    """The CNCF distribution registry on a free loopback port with a throwaway storage
    folder; stopped and deleted afterwards. ``htpasswd`` (an htpasswd file's text) turns
    on basic authentication; ``auth_config`` is any other ``auth:`` section (token auth,
    from ``token_server.TokenServer.registry_config``)."""
    binary = require_binary("docker-registry")
    port = free_port()
    storage = tmp / f"registry-{port}"
    storage.mkdir(parents=True)
    config = tmp / f"registry-{port}.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    if htpasswd is not None:
        (tmp / f"htpasswd-{port}").write_text(htpasswd)
        with config.open("a") as f:
            f.write(f"auth:\n  htpasswd:\n    realm: tierwise\n    path: {tmp}/htpasswd-{port}\n")
    elif auth_config is not None:
        with config.open("a") as f:
            f.write(auth_config)
    log = (tmp / f"registry-{port}.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start")
            time.sleep(0.05)
        yield OciRegistry(port, storage, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


class TcpProxy:
    """Forwards loopback connections to ``target_port``. ``rate_bytes_per_s`` slows the
    answers down; ``drop_after_bytes`` closes a connection once that many answer bytes went
    through it (a registry that drops the connection mid-pull)."""

    def __init__(
        self,
        target_port: int,
        *,
        rate_bytes_per_s: float | None = None,
        drop_after_bytes: int | None = None,
    ) -> None:
        self.target_port = target_port
        self.rate_bytes_per_s = rate_bytes_per_s
        self.drop_after_bytes = drop_after_bytes
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.dropped = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                if answers and self.drop_after_bytes is not None:
                    room = self.drop_after_bytes - sent
                    if len(data) >= room:
                        dst.sendall(data[: max(room, 0)])
                        self.dropped += 1
                        break
                dst.sendall(data)
                sent += len(data)
                if answers and self.rate_bytes_per_s:
                    time.sleep(len(data) / self.rate_bytes_per_s)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def make_keys(tmp: Path, name: str = "release") -> KeyPair:
    return generate_keys(tmp / "keys", name)


def model_file(folder: Path, name: str, *, seed: int, width: int = 32) -> Path:
    """A small ONNX model x [batch, 8] -> y [batch, 4]; the seed changes its weights."""
    folder.mkdir(parents=True, exist_ok=True)
    return dense_stack_model(
        folder / f"{name}.onnx", width=width, depth=3, in_width=8, out_width=4, seed=seed
    )


def make_bundle(
    tmp: Path, version: str, seeds: dict[str, int], *, name: str = "demo", width: int = 32
) -> tuple[Path, BundleManifest]:
    """A bundle folder whose variants are small models with the given seeds."""
    src = tmp / f"src-{name}-{version}"
    files = [model_file(src, variant, seed=seed, width=width) for variant, seed in seeds.items()]
    out = tmp / f"bundle-{name}-{version}"
    return out, create_bundle(files, out, name=name, version=version)


def publish(
    store: BundleStore, tmp: Path, keys: KeyPair, version: str, seeds: dict[str, int],
    *, name: str = "demo", tags: list[str] | None = None, width: int = 32,
) -> BundleManifest:  # fmt: skip
    """Make, sign and push a bundle version."""
    folder, manifest = make_bundle(tmp, version, seeds, name=name, width=width)
    push(read_bundle_dir(folder), store, Signer.from_file(keys.private_path), tags=tags)
    return manifest
