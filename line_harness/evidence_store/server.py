"""A real S3-compatible object store for tests and the demo: SeaweedFS (`weed server -s3`), run locally.

    store = LocalObjectStore(run_dir)          # ports and credentials are kept in run_dir
    store.start()                              # waits until a real S3 write works; creates the bucket
    store.endpoint, store.bucket, store.access_key, store.secret_key
    store.client()                             # a boto3 S3 client for this store
    store.client_env("WORKER_")                # env vars that point the worker's evidence writer here
    store.stop(); store.start()                # an outage: same ports, same data, same credentials

The binary is built once by deploy/evidence/build.sh (cached in ~/.cache/line-inspection). The
process runs in its own process group; with die_with_parent Linux kills it when its starter dies.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from line_harness.paths import DEPLOY_DIR, REPO
from line_harness.processes import die_with_parent, port_is_free, stop_group
from line_runtime.ports import free_ports

BUILD_SCRIPT = DEPLOY_DIR / "evidence" / "build.sh"
DEFAULT_RUN_DIR = REPO / "run" / "evidence-store"
DEFAULT_BUCKET = "line-evidence"
PROBE_BUCKET = "harness-ready"  # the readiness probe writes here
REGION = "us-east-1"  # SeaweedFS ignores it; boto3 needs one to sign requests
# SeaweedFS's components each need an HTTP and a gRPC port; all are picked free once and kept.
_PORT_NAMES = ("s3", "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")


class StoreError(RuntimeError):
    """The local object store could not be built, started, reached or stopped; the message says why."""


def weed_binary(build: bool = True) -> Path:
    """Path of the `weed` binary: $LINE_EVIDENCE_WEED, else the cached build (built now when build=True)."""
    if os.environ.get("LINE_EVIDENCE_WEED"):
        return Path(os.environ["LINE_EVIDENCE_WEED"])
    cmd = ["bash", str(BUILD_SCRIPT)]
    if not build:
        cmd.insert(0, "env")
        cmd.insert(1, "LINE_EVIDENCE_CHECK_ONLY=1")
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise StoreError(f"SeaweedFS is not built ({' '.join(cmd)} exit {done.returncode}): run "
                         f"`make evidence-server`;\n{done.stderr[-2000:]}")
    return Path(lines[-1])


def _is_our_store(pid: int, run_dir: Path) -> bool:
    """True if pid is a live `weed server` started for run_dir (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"server" in cmdline and f"-dir={run_dir / 'data'}".encode() in cmdline


class LocalObjectStore:
    """One local SeaweedFS with its S3 gateway: `start()`, `stop()`, `restart()`, `endpoint`, `client()`."""

    def __init__(self, run_dir: Path, port: Optional[int] = None, bucket: str = DEFAULT_BUCKET,
                 binary: Optional[Path] = None, die_with_parent: bool = False):
        self.run_dir = Path(run_dir).resolve()
        self.bucket = bucket
        self._binary = binary
        self.die_with_parent = die_with_parent
        self._proc: Optional[subprocess.Popen] = None
        state = self._read_state()
        ports = state.get("ports", {})
        if port:
            ports["s3"] = port
        kept = {name: ports[name] for name in _PORT_NAMES if ports.get(name)}
        # picked together and apart from the kept ones: two components on one port kill weed at start
        fresh = iter(free_ports(len(_PORT_NAMES) - len(kept), avoid=set(kept.values())))
        self.ports = {name: kept.get(name) or next(fresh) for name in _PORT_NAMES}
        self.access_key = state.get("access_key") or "line" + secrets.token_hex(8)
        self.secret_key = state.get("secret_key") or secrets.token_urlsafe(30)

    def _unused_port(self) -> int:
        """A free port none of our components holds (weed exits at start when two share one)."""
        return free_ports(1, avoid=set(self.ports.values()))[0]

    # -- addresses and clients ----------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL (path-style addressing)."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / "weed.log"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "weed.pid"

    @property
    def pid(self) -> Optional[int]:
        """Process id of the running server, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_our_store(pid, self.run_dir) else None

    def client_env(self, prefix: str = "WORKER_") -> dict[str, str]:
        """Env vars that point a worker's evidence writer at this store (holds the secret key)."""
        return {f"{prefix}EVIDENCE_ENDPOINT": self.endpoint, f"{prefix}EVIDENCE_BUCKET": self.bucket,
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def client(self, timeout_s: float = 10.0, retries: int = 2):
        """A boto3 S3 client of this store."""
        import boto3  # lazy: `status`/`stop` work without boto3
        from botocore.config import Config

        config = Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": retries,
                        "mode": "standard"}, s3={"addressing_style": "path"})
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=REGION, config=config)

    # -- lifecycle ----------------------------------------------------------------------------
    def is_running(self) -> bool:
        """True while the server process is alive."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None

    def start(self, timeout_s: float = 60.0) -> float:
        """Start the server, wait until a real write succeeds, create the bucket; return seconds to ready."""
        t0 = time.monotonic()
        if self.is_running():
            raise StoreError(f"an object store already runs for {self.run_dir} (pid {self.pid}); stop it first")
        if not port_is_free(self.ports["s3"]):
            raise StoreError(f"S3 port {self.ports['s3']} on 127.0.0.1 is in use: pick another with --port "
                             f"(or stop what listens there)")
        for name, port in self.ports.items():  # the inner ports are nobody's business: move them if taken
            if name != "s3" and not port_is_free(port):
                self.ports[name] = self._unused_port()
        binary = self._binary or weed_binary()
        for sub in ("data", "logs"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self._write_config()
        out = open(self.log_file, "ab")
        try:
            self._proc = subprocess.Popen([str(binary), *self._args()], stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=self.run_dir, start_new_session=True,
                                          preexec_fn=die_with_parent if self.die_with_parent else None)
        finally:
            out.close()
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(t0 + timeout_s)
        except BaseException:
            self.stop(timeout_s=5)
            raise
        return time.monotonic() - t0

    def stop(self, timeout_s: float = 20.0, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) the server's process group and wait; SIGKILL if it outlives timeout_s."""
        pid = self._proc.pid if self._proc is not None else self.pid
        if pid is not None:
            stop_group(pid, self._alive, timeout_s, kill)
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def restart(self, timeout_s: float = 60.0) -> float:
        """Stop, start again on the same ports, data and credentials; return seconds to ready."""
        self.stop()
        return self.start(timeout_s=timeout_s)

    def log_tail(self, n: int = 60) -> str:
        """The last n lines of the server log."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(max(0, self.log_file.stat().st_size - 300 * n))
                lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return f"(no log at {self.log_file})"
        return f"--- {self.log_file} (last {len(lines)} lines)\n" + "\n".join(lines)

    # -- internals ----------------------------------------------------------------------------
    def _args(self) -> list[str]:
        p = self.ports
        return ["server", f"-dir={self.run_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                # One master: a short election (the default 10 s delays every restart); no pre-stop wait of
                # the volume server (it lets a load balancer drain, there is none here).
                "-master.telemetry=false", "-master.electionTimeout=2s", "-volume.preStopSeconds=0",
                "-master.volumeSizeLimitMB=256", "-volume.max=16",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", f"-s3.config={self.run_dir / 's3.json'}"]

    def _read_state(self) -> dict:
        try:
            return json.loads((self.run_dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def _write_config(self) -> None:
        identity = {"name": "line", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
        state = {"ports": self.ports, "endpoint": self.endpoint, "bucket": self.bucket,
                 "access_key": self.access_key, "secret_key": self.secret_key}
        for name, doc in (("s3.json", {"identities": [identity]}), ("state.json", state)):
            fd = os.open(self.run_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # hold the secret
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=2)

    def _wait_ready(self, deadline: float) -> None:
        """Poll until the bucket exists and an object can be written and read back."""
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise StoreError(f"weed exited with code {self._proc.returncode if self._proc else '?'} before it "
                                 f"was ready;\n{self.log_tail(40)}")
            if self._port_open():
                try:
                    self._probe()
                    return
                except Exception as exc:  # not ready yet (no volume server registered, ...): ask again
                    last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
        raise StoreError(f"object store at {self.endpoint} not ready before the deadline ({last});\n"
                         f"{self.log_tail(40)}")

    def _probe(self) -> None:
        # The write goes to a bucket of its own: readers list the evidence bucket and must find only evidence.
        s3 = self.client(timeout_s=3.0, retries=1)
        for bucket in (self.bucket, PROBE_BUCKET):
            try:
                s3.head_bucket(Bucket=bucket)
            except Exception:
                s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=PROBE_BUCKET, Key="ready", Body=b"ok")
        if s3.get_object(Bucket=PROBE_BUCKET, Key="ready")["Body"].read() != b"ok":
            raise StoreError("read back a different object")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ports["s3"]), timeout=0.5):
                return True
        except OSError:
            return False

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _is_our_store(pid, self.run_dir)
