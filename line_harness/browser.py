"""A real headless Chromium (Debian's package) driven over the DevTools protocol on a pipe, stdlib only.

Why a pipe: `--remote-debugging-pipe` speaks the DevTools protocol as NUL-terminated JSON on file
descriptors 3 (commands in) and 4 (answers out), so no WebSocket client, WebDriver or browser download
is needed; the tests check what a person sees: the rendered DOM, whether images decoded, a screenshot.

    with HeadlessChromium(tmp_path) as browser:
        browser.open("http://127.0.0.1:8088/")
        browser.evaluate("document.title")
        browser.screenshot(path)

`python -m line_harness.browser URL OUT.png` takes one screenshot (docs/operator.md).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from line_harness.processes import die_with_parent

BINARIES = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(RuntimeError):
    """Chromium is missing, exited, or a DevTools command failed or timed out."""


def find_chromium() -> Optional[str]:
    """Path of a Chromium binary on PATH (Debian: apt-get install chromium; `make tools` does it)."""
    return next((shutil.which(b) for b in BINARIES if shutil.which(b)), None)


def _high_fd(fd: int) -> int:
    """A copy of fd numbered >= 10, so moving it to 3 or 4 in the child can never clobber the other."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class HeadlessChromium:
    """One headless browser with one page (tab); a context manager that always stops the browser."""

    def __init__(self, work_dir: Optional[Path] = None, width: int = 1280, height: int = 900, timeout_s: float = 30.0):
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._own_dir = work_dir is None  # a temporary profile is removed at stop
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="chromium-"))
        self.proc: Optional[subprocess.Popen] = None
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        self.session: Optional[str] = None

    # -- process -------------------------------------------------------------------------------
    def start(self) -> "HeadlessChromium":
        """Start Chromium and open one blank page."""
        binary = find_chromium()
        if binary is None:
            raise BrowserError("chromium is not on PATH: run `make tools` (Debian package 'chromium')")
        to_browser_r, to_browser_w = map(_high_fd, os.pipe())
        from_browser_r, from_browser_w = map(_high_fd, os.pipe())
        flags = ["--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
                 "--hide-scrollbars", f"--user-data-dir={self.work_dir / 'profile'}",
                 f"--window-size={self.width},{self.height}", "about:blank"]
        # bash (dash takes single-digit fds only) moves the pipe ends to fds 3 and 4, where --remote-debugging-pipe expects them.
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.work_dir / "chromium.log", "ab") as log:
            self.proc = subprocess.Popen(["bash", "-c", script, binary, *flags], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, pass_fds=(to_browser_r, from_browser_w),
                                         start_new_session=True, preexec_fn=die_with_parent)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._out, self._in = to_browser_w, from_browser_r
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        return self

    def stop(self) -> None:
        """Close the browser (its whole process group)."""
        if self.proc is None:
            return
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> "HeadlessChromium":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, n: int = 20) -> str:
        """Last lines of Chromium's own output."""
        try:
            return "\n".join((self.work_dir / "chromium.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # -- protocol ------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from chromium within {self.timeout_s:g}s\n{self.log_tail()}")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium closed its DevTools pipe (exited?)\n{self.log_tail()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: Optional[dict] = None, timeout_s: Optional[float] = None) -> dict:
        """Send one DevTools command (to the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data):]
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if "method" in answer:
                self._events.append(answer)

    def wait_event(self, method: str, timeout_s: Optional[float] = None) -> dict:
        """The next event named method (events seen earlier while waiting for answers count)."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    return self._events.pop(i).get("params", {})
            self._events.append(self._read_message(deadline))

    # -- what a test needs ---------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Navigate and wait for the load event (every image fetched and decoded, or failed)."""
        self._events = [e for e in self._events if e["method"] != "Page.loadEventFired"]
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression in the page (JSON-serialisable results only)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """PNG of the page (the whole scrollable page when full_page) written to path."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1})
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m line_harness.browser URL OUT.png [--width --height]`: one screenshot of a page."""
    parser = argparse.ArgumentParser(prog="python -m line_harness.browser", description=main.__doc__)
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    with HeadlessChromium(width=args.width, height=args.height) as browser:
        browser.open(args.url)
        print(browser.screenshot(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
