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
from tests.e2e.test_hostile_member import hostile

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


@pytest.mark.parametrize("backend", ["libdatachannel", "aiortc"])
def test_two_pages_and_a_cli_peer_chat_in_every_direction(
    signaler: SignalerProcess, browser: Browser, tmp_path: Path, backend: str
) -> None:
    cli = ChatProcess(signaler.ws_url, tmp_path, names="cli", backend=backend)
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
        # Real addresses (FLAGS): no multicast DNS query leaves loopback.
        sent = [line for line in browser.console("a") if "Sending candidate" in line]
        assert sent and not any(".local" in line for line in sent), sent

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

        for page in ("a", "b"):  # no script error, nothing the page's CSP blocked
            errors = [line for line in browser.console(page) if line.startswith(("error", "page"))]
            assert not errors, errors
        # Leaving shows on the others' side.
        browser.click("b", "#chat-leave")
        browser.wait_text("a", "#chat-log", "-web2@weron/chat/primary")
        cli.wait_for("-web2@weron/chat/primary", timeout=60)
    finally:
        cli.stop()


def test_the_page_rejoins_a_restarted_signaler_and_keeps_its_connections(
    browser: Browser, tmp_path: Path
) -> None:
    signaler = start_signaler(tmp_path)
    cli = ChatProcess(signaler.ws_url, tmp_path, names="cli")
    try:
        join_chat(browser, "a", signaler, "web")
        browser.wait_text("a", "#chat-log", "+cli@weron/chat/primary", timeout=60)
        signaler.stop()
        browser.wait_text("a", "#chat-status", "signaler connection lost")
        signaler = start_signaler(tmp_path, port=signaler.port)
        browser.wait_text("a", "#chat-status", "connected to")
        cli.wait_for_log("Connected to signaler", count=2)
        # Both introduced themselves again under their ids: the connection between them stays.
        cli.say("after the restart")
        browser.wait_text("a", "#chat-log", "cli@weron/chat/primary: after the restart")
        browser.fill("a", {"chat-line": "still here"})
        browser.click("a", "#chat-send")
        cli.wait_for("web@weron/chat/primary: still here")
        assert "-cli@" not in browser.text("a", "#chat-log")
    finally:
        cli.stop()
        signaler.stop()


def test_a_hostile_member_cannot_stop_the_page_chatting(
    signaler: SignalerProcess, browser: Browser, tmp_path: Path
) -> None:
    """A flood of fake introductions, then kicks and back-offs for the page's name on every id
    channel: the page keeps its name and keeps chatting with the CLI peer (and a line typed
    while alone reaches it once it comes)."""
    join_chat(browser, "a", signaler, "web")
    browser.wait_text("a", "#chat-log", "web!")
    browser.fill("a", {"chat-line": "typed while alone"})  # waits for the first peer
    browser.click("a", "#chat-send")
    with hostile(signaler, tmp_path, "introductions", "300"):
        # The newcomer's introduction waits behind the flood's for a negotiation slot.
        cli = ChatProcess(signaler.ws_url, tmp_path, names="cli")
    try:
        browser.wait_text("a", "#chat-log", "+cli@weron/chat/primary", timeout=90)
        expired = [line for line in browser.console("a") if "not established in time" in line]
        assert len(expired) >= 64, "the flood did not reach the page"
        cli.wait_for("web@weron/chat/primary: typed while alone")
        with hostile(signaler, tmp_path, "kick", "web", "cli"):
            cli.say("still here?")
            browser.wait_text("a", "#chat-log", "cli@weron/chat/primary: still here?")
            browser.fill("a", {"chat-line": "yes"})
            browser.click("a", "#chat-send")
            cli.wait_for("web@weron/chat/primary: yes")
        assert "web!" in browser.text("a", "#chat-log")
        assert browser.text("a", "#chat-log").count("!") == 1, "the page claimed a name twice"
    finally:
        cli.stop()


def start_server(signaler: SignalerProcess, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """`weron utility <args> --server` in community "tools"."""
    log = (tmp_path / f"{args[0]}-server.log").open("w")
    return subprocess.Popen(
        [
            *WERON,
            "utility",
            *args,
            "--server",
            "--raddr",
            signaler.ws_url,
            "--community",
            "tools",
            "--password",
            COMMUNITY["password"],
            "--key",
            COMMUNITY["key"],
            "--ice",
            "",
            "--timeout",
            "3s",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def open_tools(browser: Browser, signaler: SignalerProcess) -> None:
    assert browser.open("tools", page_url(signaler)) == 200
    browser.fill("tools", {"community": "tools", **COMMUNITY})


def microseconds(duration: str) -> float:
    """A Go duration as the page prints it (``110.111µs``, ``1.5ms``, ``2s``)."""
    match = re.fullmatch(r"([\d.]+)(ns|µs|ms|s)", duration)
    assert match, duration
    scale = {"ns": 1e-3, "µs": 1.0, "ms": 1e3, "s": 1e6}[match.group(2)]
    return float(match.group(1)) * scale


def test_latency_against_a_cli_server_with_a_screenshot(
    signaler: SignalerProcess, browser: Browser, tmp_path: Path
) -> None:
    server = start_server(signaler, tmp_path, "latency")
    try:
        open_tools(browser, signaler)
        browser.fill("tools", {"latency-pause": "0.2"})
        browser.click("tools", "#latency-start")
        log = browser.wait_text("tools", "#latency-log", lines=15)
        assert re.search(r"^128 B written and acknowledged in [\d.]+(ns|µs|ms|s)$", log, re.M), log
        browser.click("tools", "#latency-stop")
        totals = browser.wait_text("tools", "#latency-totals", "Average latency")
        match = re.match(
            r"Average latency: (\S+) \((\d+) packets written\) Min: (\S+) Max: (\S+)\n"
            r"Percentiles: p50 (\S+) p90 (\S+) p99 (\S+)$",
            totals,
        )
        assert match, totals
        print(f"the page's latency totals: {totals}")
        average, low, high = (microseconds(match.group(i)) for i in (1, 3, 4))
        assert int(match.group(2)) >= 15
        assert 0 < low <= average <= high
        shot = tmp_path / "browser-latency.png"
        browser.screenshot("tools", shot)
        print(f"screenshot of the page after a latency run: {shot}")
    finally:
        stop(server)


def test_throughput_against_a_cli_server(
    signaler: SignalerProcess, browser: Browser, tmp_path: Path
) -> None:
    server = start_server(signaler, tmp_path, "throughput", "--packet-count", "200")
    try:
        open_tools(browser, signaler)
        browser.fill("tools", {"throughput-count": "200"})
        browser.click("tools", "#throughput-start")
        log = browser.wait_text("tools", "#throughput-log", lines=3, timeout=120)
        line = re.compile(r"^([\d.]+) MB/s \(([\d.]+) Mb/s\) \(10 MB read in \S+\)$", re.M)
        assert line.search(log), log
        browser.click("tools", "#throughput-stop")
        totals = browser.wait_text("tools", "#throughput-totals", "Average throughput")
        match = re.match(
            r"Average throughput: ([\d.]+) MB/s \(([\d.]+) Mb/s\) \((\d+) MB written in \S+\) "
            r"Min: ([\d.]+) MB/s Max: ([\d.]+) MB/s$",
            totals,
        )
        assert match, totals
        print(f"the page's throughput totals: {totals}")
        average, megabits, written, low, high = (float(match.group(i)) for i in range(1, 6))
        assert written >= 30
        assert 0 < low <= average <= high
        assert megabits == pytest.approx(average * 8, abs=0.01)
    finally:
        stop(server)


def test_the_page_says_what_may_be_wrong(
    signaler: SignalerProcess, browser: Browser, tmp_path: Path
) -> None:
    """A signaler field that is no WebSocket URL, and nobody with our key."""
    assert browser.open("a", page_url(signaler)) == 200
    browser.fill("a", {"community": "chatroom", **COMMUNITY, "names": "web"})
    browser.fill("a", {"signaler": "http://localhost:1/"})
    browser.click("a", "#chat-join")
    browser.wait_text("a", "#chat-status", "must be a ws:// or wss:// URL")
    browser.fill("a", {"signaler": signaler.ws_url.replace("127.0.0.1", "localhost")})
    cli = ChatProcess(signaler.ws_url, tmp_path, names="cli", key="another key")
    try:
        browser.click("a", "#chat-join")
        browser.wait_text("a", "#chat-status", "members with another key")
        browser.click("a", "#latency-start")
        browser.wait_text("a", "#latency-status", "no server here")
    finally:
        cli.stop()


def test_a_page_from_a_foreign_origin_is_refused_unless_allowed(
    browser: Browser, tmp_path: Path
) -> None:
    """The page served by one signaler joins at another: refused (403) until that one allows
    the page's origin."""
    home = start_signaler(tmp_path)
    foreign = f"http://localhost:{home.port}"
    strict = start_signaler(tmp_path)
    allowing = start_signaler(tmp_path, "--allowed-origins", foreign)
    try:
        for signaler, joins in ((strict, False), (allowing, True)):
            page = f"to-{signaler.port}"
            assert browser.open(page, page_url(home)) == 200
            browser.fill(page, {"community": "tools", **COMMUNITY})
            browser.fill(page, {"signaler": f"ws://localhost:{signaler.port}/"})
            browser.click(page, "#latency-start")
            wanted = "connected to" if joins else "could not join"
            browser.wait_text(page, "#latency-status", wanted)
            rejected = "Rejected client: origin not allowed" in signaler.messages()
            assert rejected is not joins, signaler.logs()[-2000:]
            browser.click(page, "#latency-stop")
    finally:
        for process in (home, strict, allowing):
            process.stop()
