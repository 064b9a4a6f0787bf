"""A headless Chromium driven over the DevTools protocol, just enough for the tests of the
signaler's browser side and of ``.local`` candidates: start it on a page, evaluate expressions
(awaiting their promises), stop it by its pid. The page's own tests use Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from typing import Final

from websockets.asyncio.client import ClientConnection, connect

FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WAIT: Final = 60.0  # seconds: only to turn a hang into a failure


def chromium_missing() -> str | None:
    """Why Chromium cannot run here, or None."""
    if shutil.which("chromium") is None:
        return "needs chromium (Debian package chromium)"
    return None


class DevTools:
    """One page: :meth:`evaluate` runs an expression there and returns its value as text."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._next = 0

    async def evaluate(self, expression: str) -> str:
        self._next += 1
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        await self._connection.send(
            json.dumps({"id": self._next, "method": "Runtime.evaluate", "params": params})
        )
        while True:
            reply = json.loads(await self._connection.recv())
            if reply.get("id") == self._next:
                break
        result = reply.get("result", {})
        if "exceptionDetails" in result or "result" not in result:
            raise RuntimeError(f"page script failed: {str(reply)[:500]}")
        return str(result["result"].get("value"))


async def _page_target(process: asyncio.subprocess.Process, port: int) -> str:
    url = f"http://127.0.0.1:{port}/json/list"
    async with asyncio.timeout(WAIT):
        while True:
            if process.returncode is not None:
                raise RuntimeError("chromium exited")
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: ASYNC210
                    targets = json.load(answer)
                pages = [target for target in targets if target.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            await asyncio.sleep(0.2)


async def _loaded(page: DevTools, url: str) -> None:
    """Until the page shows ``url`` completely (expressions evaluated while it navigates fail
    with "Execution context was destroyed")."""
    async with asyncio.timeout(WAIT):
        while True:
            with contextlib.suppress(RuntimeError):
                state = await page.evaluate("document.readyState + ' ' + location.href")
                if state == f"complete {url}":
                    return
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def chromium(url: str, devtools_port: int) -> AsyncIterator[DevTools]:
    """Chromium showing ``url``, its DevTools on ``devtools_port`` (loopback)."""
    profile = tempfile.mkdtemp(prefix="weron-devtools-")
    process = await asyncio.create_subprocess_exec(
        "chromium",
        *FLAGS,
        f"--remote-debugging-port={devtools_port}",
        f"--user-data-dir={profile}",
        url,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        target = await _page_target(process, devtools_port)
        async with connect(target, max_size=None) as connection:
            page = DevTools(connection)
            await _loaded(page, url)
            yield page
    finally:
        process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        shutil.rmtree(profile, ignore_errors=True)
