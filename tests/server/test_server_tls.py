"""TLS and mutual TLS on the tier server, with a certificate authority made in the test:
httpx and tritonclient.http verify it, clients without the right certificate are
refused, an expired server certificate is refused by the client; and the safe default:
``tierwise serve`` bound beyond loopback refuses to run unguarded unless told
``--insecure``, and then says so."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from onnx_models import scale_model
from security_helpers import Pem, find_secret, tokens_file
from security_helpers import TestCA as CertAuthority  # not a test class
from server_helpers import RunningServer, free_port, running_server, server_process
from tierwise.security import TlsClientSettings, TlsServerSettings, client_context
from tierwise.server import ServerSettings

INFER_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    scale_model(root / "scale" / "1" / "model.onnx", 2.0)
    return root


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return CertAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server_pem(ca: CertAuthority) -> Pem:
    return ca.issue("tier-server")


@pytest.fixture(scope="module")
def client_pem(ca: CertAuthority) -> Pem:
    return ca.issue("line-7", server=False)


def _context(ca: CertAuthority, client: Pem | None = None) -> ssl.SSLContext:
    return client_context(
        TlsClientSettings(
            ca=ca.ca_file,
            cert=None if client is None else client.cert,
            key=None if client is None else client.key,
        )
    )


@pytest.fixture(scope="module")
def tls_server(repo: Path, server_pem: Pem) -> Iterator[RunningServer]:
    settings = ServerSettings(
        model_repo=repo, tls=TlsServerSettings(cert=server_pem.cert, key=server_pem.key)
    )
    with running_server(settings) as running:
        yield running


@pytest.fixture(scope="module")
def mtls_server(repo: Path, server_pem: Pem, ca: CertAuthority) -> Iterator[RunningServer]:
    tls = TlsServerSettings(cert=server_pem.cert, key=server_pem.key, client_ca=ca.ca_file)
    with running_server(ServerSettings(model_repo=repo, tls=tls)) as running:
        yield running


def test_tls_server_answers_a_client_that_verifies_the_ca(
    tls_server: RunningServer, ca: CertAuthority
) -> None:
    assert tls_server.url.startswith("https://")
    with httpx.Client(base_url=tls_server.url, verify=_context(ca), timeout=30) as c:
        assert c.get("/v2/health/ready").status_code == 200
        answer = c.post("/v2/models/scale/infer", json=INFER_BODY).json()
        assert answer["outputs"][0]["data"] == [2, 4, 6, 8]
    # the system's trust store does not hold the test CA: the certificate is refused
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.url + "/v2/health/live", verify=ssl.create_default_context())
    # plain HTTP to the TLS port gets no answer
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/v2/health/live", timeout=5)


def test_expired_server_certificate_is_refused_by_the_client(repo: Path, ca: CertAuthority) -> None:
    expired = ca.issue("old-server", expired=True)
    settings = ServerSettings(
        model_repo=repo, tls=TlsServerSettings(cert=expired.cert, key=expired.key)
    )
    with (
        running_server(settings) as running,
        pytest.raises(httpx.ConnectError, match="certificate has expired"),
    ):
        httpx.get(running.url + "/v2/health/live", verify=_context(ca), timeout=10)


def test_mutual_tls_with_the_client_certificate(
    mtls_server: RunningServer, ca: CertAuthority, client_pem: Pem
) -> None:
    with httpx.Client(base_url=mtls_server.url, verify=_context(ca, client_pem), timeout=30) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.post("/v2/models/scale/infer", json=INFER_BODY).status_code == 200


def _refused(url: str, context: ssl.SSLContext) -> None:
    """The TLS 1.3 handshake completes on the client's side before the server checks the
    client's certificate: the refusal arrives on the first read, as a transport error."""
    with (
        pytest.raises(httpx.TransportError),
        httpx.Client(base_url=url, verify=context, timeout=10) as c,
    ):
        c.get("/v2/health/live")


def test_mutual_tls_refuses_a_client_without_a_certificate(
    mtls_server: RunningServer, ca: CertAuthority
) -> None:
    _refused(mtls_server.url, _context(ca))


def test_mutual_tls_refuses_a_certificate_of_another_ca(
    mtls_server: RunningServer, ca: CertAuthority, tmp_path: Path
) -> None:
    other = CertAuthority(tmp_path / "other", name="someone else CA")
    intruder = other.issue("intruder", server=False)
    _refused(mtls_server.url, _context(ca, intruder))


def test_tritonclient_over_mutual_tls(
    mtls_server: RunningServer, ca: CertAuthority, client_pem: Pem
) -> None:
    client = triton.InferenceServerClient(
        mtls_server.host_port,
        ssl=True,
        ssl_options={
            "ca_certs": str(ca.ca_file),
            "certfile": str(client_pem.cert),
            "keyfile": str(client_pem.key),
        },
    )
    try:
        assert client.is_server_live()
        assert client.is_model_ready("scale")
        x = np.array([[1, 2, 3, 4]], dtype=np.float32)
        infer_input = triton.InferInput("x", [1, 4], "FP32")
        infer_input.set_data_from_numpy(x, binary_data=True)
        result = client.infer("scale", [infer_input])
        (name,) = [o["name"] for o in result.get_response()["outputs"]]
        np.testing.assert_array_equal(result.as_numpy(name), x * 2)
    finally:
        client.close()


def test_tritonclient_without_the_ca_is_refused(tls_server: RunningServer) -> None:
    client = triton.InferenceServerClient(tls_server.host_port, ssl=True)
    try:
        with pytest.raises(ssl.SSLError):
            client.is_server_live()
    finally:
        client.close()


def _serve(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
         "--port", str(free_port()), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_unguarded_bind_beyond_loopback_refuses_to_start(repo: Path) -> None:
    result = _serve(repo, "--host", "0.0.0.0")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: host:")
    for way_out in ("--tokens-file", "--tls-client-ca", "--insecure"):
        assert way_out in line
    assert "0.0.0.0" in line


def test_tls_without_client_ca_is_still_unguarded(repo: Path, server_pem: Pem) -> None:
    result = _serve(
        repo, "--host", "0.0.0.0", "--tls-cert", str(server_pem.cert),
        "--tls-key", str(server_pem.key),
    )  # fmt: skip
    assert result.returncode == 2
    assert "--insecure" in result.stderr


def test_insecure_bind_starts_and_says_so_first(repo: Path) -> None:
    with server_process(repo, "--host", "0.0.0.0", "--insecure") as running:
        meta = httpx.get(running.url + "/v2", timeout=10).json()
        assert meta["insecure"] is True
        first = running.log().splitlines()[0]
        assert "WARNING tierwise.server: INSECURE: listening on 0.0.0.0" in first


def test_insecure_is_not_claimed_on_loopback(repo: Path) -> None:
    with server_process(repo, "--insecure") as running:
        assert "insecure" not in httpx.get(running.url + "/v2", timeout=10).json()
        assert "INSECURE" not in running.log()


def test_serve_with_tls_and_tokens_flags_beyond_loopback(
    repo: Path, ca: CertAuthority, server_pem: Pem, tmp_path: Path
) -> None:
    path, tokens = tokens_file(tmp_path / "tokens.txt", ("app", "infer"), ("ops", "admin"))
    with server_process(
        repo, "--host", "0.0.0.0", "--tls-cert", str(server_pem.cert),
        "--tls-key", str(server_pem.key), "--tokens-file", str(path),
        verify=_context(ca),
    ) as running:  # fmt: skip
        assert running.url.startswith("https://")
        with httpx.Client(base_url=running.url, verify=_context(ca), timeout=30) as c:
            assert c.get("/v2").status_code == 401
            app = {"Authorization": f"Bearer {tokens['app']}"}
            meta = c.get("/v2", headers=app).json()
            assert "insecure" not in meta
            assert c.post("/v2/models/scale/infer", json=INFER_BODY, headers=app).is_success
            ops = {"Authorization": f"Bearer {tokens['ops']}"}
            assert c.post("/v2/repository/index", json={}, headers=ops).status_code == 200
        log = running.log()
    assert "audit action=index model=- peer=127.0.0.1 client=ops status=200" in log
    assert "INSECURE" not in log
    assert find_secret(log) is None


def test_mutual_tls_alone_guards_a_bind_beyond_loopback(
    repo: Path, ca: CertAuthority, server_pem: Pem, client_pem: Pem
) -> None:
    context = _context(ca, client_pem)
    with server_process(
        repo, "--host", "0.0.0.0", "--tls-cert", str(server_pem.cert),
        "--tls-key", str(server_pem.key), "--tls-client-ca", str(ca.ca_file),
        verify=context,
    ) as running:  # fmt: skip
        assert httpx.get(running.url + "/v2", verify=context, timeout=10).status_code == 200
        _refused(running.url, _context(ca))


def test_a_missing_tls_file_is_one_line(repo: Path, tmp_path: Path, server_pem: Pem) -> None:
    result = _serve(
        repo, "--tls-cert", str(server_pem.cert), "--tls-key", str(tmp_path / "none.key")
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: tls.key: expected a readable PEM file, got '{tmp_path / 'none.key'}'"
    ]
