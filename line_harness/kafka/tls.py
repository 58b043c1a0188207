"""TLS material and SASL credentials for the local broker's SASL_SSL mode (stdlib + `openssl`).

Everything is generated once into `<run_dir>/tls` and reused: a throw-away CA, a broker
certificate for `localhost` / 127.0.0.1 signed by it, and random SCRAM passwords. Private keys
and passwords are written 0600 and never printed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIENT_USER = "line-inspection"
BROKER_USER = "broker"  # the broker's own identity on its SASL_SSL listener (inter-broker traffic)
CERT_DAYS = "825"


@dataclass(frozen=True)
class TlsMaterial:
    """Paths and credentials of one local SASL_SSL setup."""

    ca_file: Path          # PEM CA certificate clients must trust
    keystore_file: Path    # PEM: broker private key + certificate chain (ssl.keystore.type=PEM)
    client_user: str
    client_password: str
    broker_user: str
    broker_password: str

    def __repr__(self) -> str:  # never show the passwords
        return f"TlsMaterial(ca_file={self.ca_file}, client_user={self.client_user!r})"


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl not found on PATH; install it (Debian: apt-get install openssl) "
                           "or run the broker with security=plaintext")
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _password(path: Path) -> str:
    if not path.exists():
        _write_secret(path, secrets.token_urlsafe(24))
    return path.read_text().strip()


def ensure_tls_material(run_dir: Path) -> TlsMaterial:
    """Create (first call) or load the CA, broker keystore and SCRAM passwords under run_dir/tls."""
    tls = run_dir / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    ca, keystore = tls / "ca.pem", tls / "broker-keystore.pem"
    if not (ca.exists() and keystore.exists()):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", CERT_DAYS, "-subj", "/CN=line-inspection local test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tls)
        # -nodes with OpenSSL 3 writes an unencrypted PKCS#8 key, which Kafka's PEM keystore reads.
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
                 "-subj", "/CN=localhost", cwd=tls)
        (tls / "broker.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "broker.pem", "-days", CERT_DAYS, "-extfile", "broker.ext",
                 cwd=tls)
        chain = (tls / "broker.key").read_text() + (tls / "broker.pem").read_text() + ca.read_text()
        _write_secret(keystore, chain)
        for name in ("ca.key", "broker.key"):
            os.chmod(tls / name, 0o600)
    return TlsMaterial(ca_file=ca, keystore_file=keystore,
                       client_user=CLIENT_USER, client_password=_password(tls / "client.password"),
                       broker_user=BROKER_USER, broker_password=_password(tls / "broker.password"))
