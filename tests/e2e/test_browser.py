"""The browser peer (docs/browser.md) in a real Chromium, against the signaler that serves it
and CLI peers: chat in every direction with names negotiated, latency and throughput against
`weron utility` servers, a foreign origin refused, and a screenshot after a latency run."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import Browser, skip_unless_browser
from tests.e2e.chat import ChatProcess
from tests.e2e.processes import WERON, SignalerProcess, start_signaler

COMMUNITY = {"password": "pw", "key": "mykey", "timeout": "3"}


@pytest.fixture
def signaler(tmp_path: Path) -> Iterator[SignalerProcess]:
    skip_unless_browser()
    process = start_signaler(tmp_path)
    yield process
    process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    skip_unless_browser()
    driver = Browser(tmp_path)
    yield driver
    driver.close()


def page_url(signaler: SignalerProcess) -> str:
    # localhost, not 127.0.0.1: the page is then a secure context (crypto.subtle needs one).
    return f"http://localhost:{signaler.port}/web/"


def join_chat(browser: Browser, page: str, signaler: SignalerProcess, names: str) -> None:
    assert browser.open(page, page_url(signaler)) == 200
    browser.fill(page, {"community": "chatroom", **COMMUNITY, "names": names})
    browser.click(page, "#chat-join")


def test_two_pages_and_a_cli_peer_chat_in_every_direction(
    signaler: SignalerProcess, browser: Browser, tmp_path: Path
) -> None:
    cli = ChatProcess(signaler.ws_url.replace("127.0.0.1", "localhost"), tmp_path, names="cli")
    try:
        assert cli.name(timeout=60) == "cli"
        join_chat(browser, "a", signaler, "web,web2")
        browser.wait_text("a", "#chat-log", "web!")
        # The second page wants the first's name too: it is told it is taken and claims another.
        join_chat(browser, "b", signaler, "web,web2")
        browser.wait_text("b", "#chat-log", "web2!")
        for page, others in (("a", ("cli", "web2")), ("b", ("cli", "web"))):
            for other in others:
                browser.wait_text(page, "#chat-log", f"+{other}@weron/chat/primary")
        cli.wait_for("+web@weron/chat/primary", timeout=60)
        cli.wait_for("+web2@weron/chat/primary", timeout=60)

        cli.say("hello from the terminal")
        for page in ("a", "b"):
            browser.wait_text(page, "#chat-log", "cli@weron/chat/primary: hello from the terminal")
        for page, name in (("a", "web"), ("b", "web2")):
            browser.fill(page, {"chat-line": f"hello from {name}"})
            browser.click(page, "#chat-send")
        cli.wait_for("web@weron/chat/primary: hello from web")
        cli.wait_for("web2@weron/chat/primary: hello from web2")
        browser.wait_text("a", "#chat-log", "web2@weron/chat/primary: hello from web2")
        browser.wait_text("b", "#chat-log", "web@weron/chat/primary: hello from web")

        # Leaving shows on the others' side.
        browser.click("b", "#chat-leave")
        browser.wait_text("a", "#chat-log", "-web2@weron/chat/primary")
        cli.wait_for("-web2@weron/chat/primary", timeout=60)
    finally:
        cli.stop()
