"""Authentication to Prometheus: a real server behind TLS and basic auth (its own
``--web.config.file``), and a bearer token checked by a stub; secrets read from files and never
saved with a model; every refusal a SourceError that says what to give."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tsdiff.errors import ParameterError, SourceError
from tsdiff.sources.http import Auth
from tsdiff.sources.prometheus import PrometheusSource

from tests.prometheus_server import BINARIES, _die_with_parent, free_port, needs_prometheus


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """Prometheus on https://127.0.0.1 with a certificate of a CA of its own, and basic auth."""
    needs_prometheus()
    bcrypt = pytest.importorskip("bcrypt")
    root = tmp_path_factory.mktemp("secured")
    ca, key, csr, cert = (str(root / n) for n in ("ca.pem", "server.key", "server.csr", "server.pem"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(root / "ca.key"), "-out", ca,
             "-days", "2", "-subj", "/CN=tsdiff test CA")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", str(root / "ca.key"), "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", str(root / "san.ext"))  # fmt: skip
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (root / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  sre: {hashed}\n"
    )
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1s\n")
    (root / "password").write_text("s3cret\n")
    (root / "wrong").write_text("guess\n")
    port = free_port()
    log = open(root / "prometheus.log", "w")
    proc = subprocess.Popen(
        [BINARIES[0], f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={root / 'web.yml'}"],
        stdout=subprocess.DEVNULL, stderr=log, preexec_fn=_die_with_parent,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    auth = Auth(username="sre", password_file=str(root / "password"), ca_file=ca)
    try:
        until = time.monotonic() + 60
        while True:
            try:
                PrometheusSource(url, ["up"], auth=auth).server_time()
                break
            except SourceError:
                assert proc.poll() is None and time.monotonic() < until, (root / "prometheus.log").read_text()
                time.sleep(0.1)
        yield url, auth, root
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_tls_and_basic_auth_through_a_real_server(secured):
    url, auth, root = secured
    assert PrometheusSource(url, ["up"], auth=auth).server_time().year >= 2024
    cases = [
        (Auth(), "cannot verify the TLS certificate .* \\(--ca-file\\)"),
        (Auth(ca_file=auth.ca_file), "HTTP 401 .* it needs credentials"),
        (
            Auth(username="sre", password_file=str(root / "wrong"), ca_file=auth.ca_file),
            "check the credentials",
        ),
    ]
    for wrong, message in cases:
        with pytest.raises(SourceError, match=message):
            PrometheusSource(url, ["up"], auth=wrong).server_time()


def test_the_model_keeps_the_paths_never_the_secret(secured, tmp_path):
    url, auth, root = secured
    fit = subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "fit", "--prometheus", url, "--query", "v=vector(1) + 0*time()",
         "--start", "now-5m", "--end", "now", "--step", "5s", "--detector", "pca", "-o", str(tmp_path / "m"),
         "--basic-auth-user", "sre", "--basic-auth-password-file", str(root / "password"),
         "--ca-file", auth.ca_file],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    saved = "".join(p.read_text() for p in (tmp_path / "m").glob("*.json"))
    assert "s3cret" not in saved and str(root / "password") in saved
    import tsdiff

    source = PrometheusSource.from_dict(tsdiff.load(tmp_path / "m").source_)
    assert source.auth == auth and source.server_time().year >= 2024  # a watcher reads as the fit did
    other = Auth(bearer_token_file=str(root / "password"))
    assert PrometheusSource.from_dict(tsdiff.load(tmp_path / "m").source_, auth=other).auth == other


class _TokenChecker(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == "Bearer t0ken"
        body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "1.7e9"]}})
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode() if ok else b"Unauthorized")

    def log_message(self, *args: object) -> None:
        pass


def test_a_bearer_token_is_sent_from_its_file(tmp_path):
    (tmp_path / "token").write_text("t0ken\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenChecker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        PrometheusSource(url, ["up"], auth=Auth(bearer_token_file=str(tmp_path / "token"))).server_time()
        with pytest.raises(SourceError, match="HTTP 401"):
            PrometheusSource(url, ["up"]).server_time()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ParameterError, match="not a readable file"):
        Auth(bearer_token_file=str(tmp_path / "missing"))
    with pytest.raises(ParameterError, match="needs both a user and a password file"):
        Auth(username="sre")
    assert Path(tmp_path / "token").read_text().strip() == "t0ken"
