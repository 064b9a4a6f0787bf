"""Debian's Chromium driven by playwright-core (tests/e2e/browser/driver.mjs) for the browser
peer's tests: JSON commands over the driver's stdin, replies on its stdout.

Chromium runs headless with the flags this machine needs (no sandbox, GPU, QUIC, background
networking, component updates or sync: its own connections out are refused here) and with
``--disable-features=WebRtcHideLocalIpsWithMdns``: with its default settings Chromium hides its
host candidates behind ``.local`` names, which our peers resolve with multicast DNS queries that
would leave loopback here (tests/netlab/test_mdns_candidates.py tests the defaults inside a
namespace of its own)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import devtools

HERE = Path(__file__).parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (*devtools.FLAGS, "--disable-features=WebRtcHideLocalIpsWithMdns")


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian package chromium; ./dev.sh installs it)"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        return f"playwright-core is not installed (npm ci in {HERE}; ./dev.sh does it)"
    return None


class Browser:
    """One Chromium with named pages."""

    def __init__(self, directory: Path) -> None:
        node = shutil.which("node")
        assert node is not None
        self.log_path = directory / "driver.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [node, str(HERE / "driver.mjs"), str(CHROMIUM), str(directory / "profile"), *FLAGS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            cwd=HERE,
        )
        self._reply()  # "ready"

    def _reply(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the browser driver exited: {self.log_path.read_text()[-2000:]}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise AssertionError(reply["error"])
        return reply["value"]

    def call(self, op: str, page: str, **arguments: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, "page": page, **arguments}) + "\n")
        return self._reply()

    def open(self, page: str, url: str) -> int | None:
        status: int | None = self.call("open", page, url=url)
        return status

    def fill(self, page: str, fields: dict[str, str]) -> None:
        for field, value in fields.items():
            self.call("fill", page, selector=f"#{field}", value=value)

    def click(self, page: str, selector: str) -> None:
        self.call("click", page, selector=selector)

    def text(self, page: str, selector: str) -> str:
        text: str = self.call("text", page, selector=selector)
        return text

    def wait_text(
        self, page: str, selector: str, text: str = "", lines: int = 0, timeout: float = 60.0
    ) -> str:
        """The element's text once it contains ``text`` and at least ``lines`` lines; on
        failure, the page's console too."""
        try:
            found: str = self.call(
                "wait_text", page, selector=selector, text=text, lines=lines, timeout=timeout
            )
        except AssertionError as error:
            raise AssertionError(
                f"{text!r} (or {lines} lines) not in {selector} of page {page} within "
                f"{timeout}s: {error}\n"
                f"it shows: {self.text(page, selector)!r}\nconsole: {self.console(page)}"
            ) from None
        return found

    def console(self, page: str) -> list[str]:
        lines: list[str] = self.call("console", page)
        return lines

    def screenshot(self, page: str, path: Path) -> None:
        self.call("screenshot", page, path=str(path))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def skip_unless_browser() -> None:
    problem = browser_problem()
    if problem:
        pytest.skip(f"browser tests: {problem}")
