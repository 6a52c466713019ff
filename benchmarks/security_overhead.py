"""What security costs: TLS with token auth on a tier server, and per-client limits on
the gateway, each measured side by side with the same server unguarded.

One run, load from wrk in its own process (keep-alive connections, batch-1 V2 JSON),
four server processes up together. Each comparison is measured as pairs, the two runs of
a pair back to back (which goes first alternates), and its figure is the median of the
pairs' ratios, so a machine that slows down between pairs moves both sides alike. With
two or more CPUs, wrk runs on CPU 0 and the servers on the others (``taskset``): the
client's own TLS work then does not take CPU from the server it measures.

- tier server (the zoo's large model): ``tierwise serve`` over HTTPS with
  ``--tokens-file`` (every request carries a bearer token) >= 80% of the requests/s of
  the same server over plain HTTP without tokens;
- gateway (one in-process tier with the same model): ``tierwise gateway`` with tokens and
  a ``clients:`` entry for the caller (a rate limit and a daily budget far above what
  the run can reach, so both are checked and charged on every request, never hit)
  >= 90% of the same gateway without tokens or limits.

No request may fail (a 401 or 429 would count). Prints one JSON line; exits 1 when a
target is missed. Needs wrk (apt-get install wrk).
Usage: python benchmarks/security_overhead.py [--duration-s 4] [--rounds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import WrkResult, digits_request, free_port, pinning, require_wrk, run_wrk

from tierwise.security import hash_line, make_token
from tierwise.zoo import build_zoo

JSON_HEADERS = {"Content-Type": "application/json"}
TLS_TARGET = 0.80
LIMITS_TARGET = 0.90


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (wrk does not check it; the readiness
    probe trusts it explicitly)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def _server(
    argv: Sequence[str], ready_url: str, log: Path, verify: ssl.SSLContext | bool = True
) -> Iterator[None]:
    """Start a server process, wait until ``ready_url`` answers 200, stop it at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[3]} exited early:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} never became ready; see {log}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _plan(path: Path, model: Path) -> Path:
    path.write_text(
        f"""version: 1
tiers:
  device:
    kind: device
    site: store-1
    region: us-east
    local: {{model: {model}}}
    rtt_p50_ms: 0
    rtt_p99_ms: 0
    cost_usd_per_inference: 1.0e-6
workloads:
  digits:
    privacy: public
    cascade:
      - {{tier: device}}
"""
    )
    return path


#: (guarded, baseline): each ratio is guarded / baseline, measured in adjacent pairs.
PAIRS = (("serve_tls_auth", "serve_plain"), ("gateway_limited", "gateway_open"))


def measure(tmp: Path, duration_s: float, rounds: int, connections: int) -> dict[str, Any]:
    zoo = tmp / "zoo"
    build_zoo(zoo, seed=0)
    model = zoo / "large" / "1" / "model.onnx"
    repo = tmp / "repo"
    (repo / "large" / "1").mkdir(parents=True)
    (repo / "large" / "1" / "model.onnx").write_bytes(model.read_bytes())
    cert, key = _certificate(tmp)
    token, record = make_token("bench", "infer")
    tokens = tmp / "tokens"
    tokens.write_text(hash_line(record) + "\n")
    plan = _plan(tmp / "plan.yaml", model)
    limited = tmp / "gateway.yaml"
    limited.write_text(
        f"auth: {{tokens_file: {tokens}}}\n"
        "clients:\n  bench: {rate_per_s: 1.0e9, burst: 1000000000, budget_usd_per_day: 1.0e9}\n"
    )
    ports = {n: free_port() for n in ("serve_plain", "serve_tls_auth", "gateway_open",
                                      "gateway_limited")}  # fmt: skip
    client_pin, server_pin = pinning()
    py = [*server_pin, sys.executable, "-m", "tierwise"]
    serve = [*py, "serve", "--model-repo", str(repo), "--no-access-log", "--port"]
    gateway = [*py, "gateway", "--plan", str(plan), "--port"]
    verify = ssl.create_default_context(cafile=str(cert))
    auth = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
    systems: dict[str, tuple[list[str], str, dict[str, str], ssl.SSLContext | bool]] = {
        "serve_plain": ([*serve, str(ports["serve_plain"])], "http", JSON_HEADERS, True),
        "serve_tls_auth": (
            [*serve, str(ports["serve_tls_auth"]), "--tls-cert", str(cert), "--tls-key",
             str(key), "--tokens-file", str(tokens)], "https", auth, verify,
        ),
        "gateway_open": ([*gateway, str(ports["gateway_open"])], "http", JSON_HEADERS, True),
        "gateway_limited": (
            [*gateway, str(ports["gateway_limited"]), "--config", str(limited)], "http", auth,
            True,
        ),
    }  # fmt: skip
    body = digits_request()
    model_name = {"serve_plain": "large", "serve_tls_auth": "large"}
    runs: dict[str, list[WrkResult]] = {name: [] for name in systems}
    ratios: dict[str, list[float]] = {guarded: [] for guarded, _ in PAIRS}
    with ExitStack() as stack:
        for name, (argv, scheme, _, check) in systems.items():
            base = f"{scheme}://127.0.0.1:{ports[name]}"
            stack.enter_context(
                _server(argv, f"{base}/v2/health/ready", tmp / f"{name}.log", verify=check)
            )

        def run(name: str, seconds: float) -> WrkResult:
            _, scheme, headers, _ = systems[name]
            url = (f"{scheme}://127.0.0.1:{ports[name]}/v2/models/"
                   f"{model_name.get(name, 'digits')}/infer")  # fmt: skip
            return run_wrk(
                url, body, connections=connections, duration_s=seconds, headers=headers,
                pin=client_pin,
            )  # fmt: skip

        for name in systems:  # warm every server and connection path once
            run(name, 1)
        for round_ in range(rounds):
            for guarded, baseline in PAIRS:
                pair = (guarded, baseline) if round_ % 2 else (baseline, guarded)
                got = {name: run(name, duration_s) for name in pair}
                for name, result in got.items():
                    runs[name].append(result)
                ratios[guarded].append(
                    got[guarded].requests_per_s / max(got[baseline].requests_per_s, 1e-9)
                )
    out: dict[str, Any] = {}
    for name, results in runs.items():
        out[name] = {
            "rounds": len(results),
            "requests_per_s": statistics.median(r.requests_per_s for r in results),
            "p50_ms": statistics.median(r.p50_ms for r in results),
            "p99_ms": statistics.median(r.p99_ms for r in results),
            "errors": sum(r.errors for r in results),
            "all_requests_per_s": [round(r.requests_per_s, 1) for r in results],
        }
    out["pair_ratios"] = {name: [round(r, 3) for r in values] for name, values in ratios.items()}
    out["pinned"] = bool(client_pin)
    return out


def evaluate(runs: dict[str, Any]) -> dict[str, Any]:
    tls = statistics.median(runs["pair_ratios"]["serve_tls_auth"])
    limits = statistics.median(runs["pair_ratios"]["gateway_limited"])
    checks = {
        "serve_tls_auth_80pct_of_plain": tls >= TLS_TARGET,
        "gateway_limits_90pct_of_open": limits >= LIMITS_TARGET,
        "no_errors": all(runs[name]["errors"] == 0 for pair in PAIRS for name in pair),
    }
    return {"serve_tls_auth_of_plain": tls, "gateway_limited_of_open": limits,
            "checks": checks, "passed": all(checks.values())}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description="Security overhead benchmark.")
    parser.add_argument("--duration-s", type=float, default=4.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=5, help="pairs per comparison")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    args = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp_name:
        runs = measure(Path(tmp_name), args.duration_s, args.rounds, args.connections)
    result: dict[str, Any] = {"benchmark": "security_overhead", "connections": args.connections,
                              "runs": runs}  # fmt: skip
    result |= evaluate(runs)
    print(orjson.dumps(result).decode())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
