"""Child processes of the harness (demo, bench, chaos, tests): each in its own process group, all stoppable.

Every child gets its own session, so Ctrl-C in the terminal reaches only the harness, which then
stops the children in order (simulator first, broker last), each by its whole process group.
Linux SIGKILLs every child if the harness itself dies (PR_SET_PDEATHSIG), so even `kill -9` of the
demo leaves nothing behind. Also here: free ports, /proc CPU and memory readings, signal exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Optional, Sequence

from line_runtime.ports import free_ports

_PR_SET_PDEATHSIG = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when its parent dies.

    Linux fires this when the *thread* that started the child exits, so start a child that must
    outlive a helper thread from a long-lived thread, normally the main one.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def exit_on_signals() -> None:
    """SIGTERM/SIGINT raise SystemExit(128 + signal), so `finally` blocks stop the children (background
    jobs start with SIGINT ignored, and Python's default SIGTERM skips `finally`)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (a port in TIME_WAIT counts as free, as a server reuses it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(preferred: Optional[int] = None) -> int:
    """`preferred` if nothing listens there on 127.0.0.1, else any port free right now.

    For several ports at once use `line_runtime.ports.free_ports`: back-to-back calls here may return one port twice."""
    if preferred and port_is_free(preferred):
        return preferred
    return free_ports(1)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its live descendants have used (from /proc/<pid>/stat).

    Descendants count because a worker with WORKER_PROCESSES > 1 is a supervisor whose children do the work."""
    return sum(_stat(p)[1] for p in _tree(pid))


def machine_busy_seconds() -> float:
    """CPU seconds all cores of this machine have spent busy (not idle or waiting on I/O) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and its live descendants in bytes (from /proc/<pid>/statm)."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE_BYTES
        except (FileNotFoundError, ProcessLookupError):
            if p == pid:
                raise
    return total


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                parents.setdefault(_stat(int(entry))[0], []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue  # ended while we looked
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(parents.get(current, ()))
    return out


def stop_group(pid: int, alive: Callable[[int], bool], timeout_s: float, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL) the process group led by `pid`, wait up to timeout_s, then SIGKILL it; returns when
    `alive(pid)` is false. The one stop sequence of the local servers (Kafka broker, evidence store)."""
    _signal_group(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


class Child:
    """One started process: `name`, `proc`, `log_path`; `stop()` ends its whole process group."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path,
                 stdout: Optional[int | IO] = None, stderr: Optional[int | IO] = None):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._log if stdout is None else stdout,
                                     stderr=self._log if stderr is None else stderr,
                                     start_new_session=True, preexec_fn=die_with_parent)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def send(self, signum: int) -> None:
        """Send signum to the child's whole process group (no error if it is gone)."""
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout_s: float) -> Optional[int]:
        """Exit code, or None if still running after timeout_s."""
        try:
            return self.proc.wait(timeout=max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 30.0, first_signal: int = signal.SIGTERM) -> Optional[int]:
        """first_signal to the group, SIGKILL after grace_s; returns the exit code (None if it was killed late)."""
        if self.running():
            self.send(first_signal)
            if self.wait(grace_s) is None:
                self.send(signal.SIGKILL)
                self.wait(10)
        # The leader may be gone while a grandchild of its group lives on: kill the group regardless.
        self.send(signal.SIGKILL)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> Optional[int]:
        """SIGKILL the group at once: no shutdown path runs at all."""
        return self.stop(grace_s=10, first_signal=signal.SIGKILL)

    def log_tail(self, n: int = 30) -> str:
        """Last n lines of the child's log file."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def group_alive(pgid: int) -> bool:
    """True if any process of process group pgid still exists."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def wait_until(predicate, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll predicate until it is true or the deadline passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def tee_lines(pipe: IO[bytes], log_path: Path, on_line: Callable[[str], None]) -> threading.Thread:
    """A thread copying a child's output pipe line by line into log_path and to on_line."""
    def copy() -> None:
        with open(log_path, "a") as log:
            for raw in pipe:
                line = raw.decode(errors="replace").rstrip()
                log.write(line + "\n")
                log.flush()
                on_line(line)

    thread = threading.Thread(target=copy, daemon=True, name=f"tee-{log_path.name}")
    thread.start()
    return thread
