"""`weron chat` between real processes over real WebRTC, through our signaler."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.chat import ChatProcess, TerminalChat, chat_command
from tests.e2e.conftest import StartSignaler
from tests.e2e.processes import WERON, SignalerProcess, free_port
from tests.e2e.turn import coturn
from weron.cli.options import DEFAULT_RADDR
from weron.signaler_client.client import SignalingClient
from weron.signaler_client.messages import Exchange, Introduction, MessageType

StartChat = Callable[..., ChatProcess]
PRIMARY = "weron/chat/primary"
# Made by ./dev.sh test where Python 3.11 is installed next to a newer one.
PYTHON_311 = Path(__file__).resolve().parents[2] / ".venv311" / "bin" / "python"


def connected(chats: list[ChatProcess]) -> list[str]:
    """Wait until every chat has a name and sees every other one; return the names."""
    names = [chat.name() for chat in chats]
    for chat, name in zip(chats, names, strict=True):
        for other in names:
            if other != name:
                chat.wait_for(f"+{other}@{PRIMARY}")
    return names


@pytest.mark.parametrize(
    "backends",
    [("libdatachannel", "libdatachannel"), ("aiortc", "aiortc"), ("libdatachannel", "aiortc")],
    ids=["libdatachannel", "aiortc", "mixed"],
)
def test_two_peers_chat_both_ways(
    signaler: SignalerProcess, chat_factory: StartChat, backends: tuple[str, str]
) -> None:
    first = chat_factory(signaler.ws_url, backend=backends[0])
    second = chat_factory(signaler.ws_url, backend=backends[1])
    first_name, second_name = connected([first, second])
    first.say("hello from the first")
    second.say("hello from the second")
    second.wait_for(f"{first_name}@{PRIMARY}: hello from the first")
    first.wait_for(f"{second_name}@{PRIMARY}: hello from the second")
    assert first.lines[0].startswith(f".{signaler.ws_url}")
    assert first.stop() == 0


@pytest.mark.skipif(
    not PYTHON_311.exists(), reason="no .venv311: ./dev.sh test makes it where Python 3.11 is"
)
def test_a_python_3_11_venv_chats_with_a_peer_on_libdatachannel(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    """The weron installed in the 3.11 venv (aiortc: no libdatachannel wheel there) and this
    Python's on libdatachannel, through this Python's signaler."""
    version = subprocess.run(
        [PYTHON_311, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.split() == ["3", "11"]
    modern = chat_factory(signaler.ws_url, names="modern", backend="libdatachannel")
    old = chat_factory(signaler.ws_url, names="old", python=str(PYTHON_311))
    connected([modern, old])
    assert '"engine":"aiortc","reason":"libdatachannel-py is not installed' in old.logs()
    modern.say("hello from libdatachannel")
    old.say("hello from Python 3.11")
    old.wait_for(f"modern@{PRIMARY}: hello from libdatachannel")
    modern.wait_for(f"old@{PRIMARY}: hello from Python 3.11")
    assert old.stop() == 0


def test_three_peers_and_several_channels(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    chats = [
        chat_factory(signaler.ws_url, "--channels", "one,two", backend=backend)
        for backend in ("libdatachannel", "aiortc", "libdatachannel")
    ]
    names = [chat.name() for chat in chats]
    for chat, name in zip(chats, names, strict=True):
        for other in names:
            if other != name:
                for channel in ("one", "two"):
                    chat.wait_for(f"+{other}@{channel}")
    chats[0].say("to everyone")
    for chat in chats[1:]:
        chat.wait_for(f"{names[0]}@one: to everyone")
        chat.wait_for(f"{names[0]}@two: to everyone")


def test_same_names_end_different_and_deterministic(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    """The member that started first keeps the first name; the later one backs off."""
    first = chat_factory(signaler.ws_url, names="alice,bob")
    time.sleep(0.5)
    second = chat_factory(signaler.ws_url, names="alice,bob")
    assert [first.name(), second.name()] == ["alice", "bob"]
    third = chat_factory(signaler.ws_url, names="alice,bob")
    assert third.process.wait(30) != 0  # no name left: a clear error, not a hang
    assert "Error: all available names have been claimed" in third.logs()
    assert "Traceback" not in third.logs()


def test_leaving_and_rejoining_are_reported(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    stayer = chat_factory(signaler.ws_url, names="stayer")
    leaver = chat_factory(signaler.ws_url, names="leaver")
    connected([stayer, leaver])
    leaver.kill()  # no goodbye: the connection has to be found dead
    stayer.wait_for(f"-leaver@{PRIMARY}", timeout=40)
    returning = chat_factory(signaler.ws_url, names="leaver")
    returning.wait_for(f"+stayer@{PRIMARY}")
    stayer.lines.clear()
    stayer.wait_for(f"+leaver@{PRIMARY}")
    returning.say("back again")
    stayer.wait_for(f"leaver@{PRIMARY}: back again")


def test_chat_carries_on_through_a_signaler_restart(
    signaler_factory: StartSignaler, chat_factory: StartChat
) -> None:
    """Connections outlive the signaler: lines keep flowing while it is down and after it
    returns, and nobody is reported as gone."""
    signaler = signaler_factory()
    first = chat_factory(signaler.ws_url, names="first")
    second = chat_factory(signaler.ws_url, names="second")
    connected([first, second])
    signaler_lines = first.logs().count('"message":"Connected to signaler"')
    signaler.stop()
    first.say("while the signaler is away")
    second.wait_for(f"first@{PRIMARY}: while the signaler is away")
    signaler_factory(port=signaler.port)
    first.wait_for_log("Connected to signaler", count=signaler_lines + 1)
    second.say("after the restart")
    first.wait_for(f"second@{PRIMARY}: after the restart")
    for chat, other in ((first, "second"), (second, "first")):
        assert f"-{other}@{PRIMARY}" not in chat.lines


def test_wrong_key_connects_to_nobody_and_breaks_nothing(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    first = chat_factory(signaler.ws_url, names="first")
    outsider = chat_factory(signaler.ws_url, names="outsider", key="another key")
    second = chat_factory(signaler.ws_url, names="second")
    connected([first, second])
    outsider.name()
    time.sleep(2)
    assert not any(line.startswith("+") for line in outsider.lines)
    assert not any("outsider" in line for line in first.lines + second.lines)
    for chat in (first, outsider, second):
        assert chat.process.poll() is None


def test_unreachable_stun_servers_delay_nothing_much(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    """No internet here: the default STUN name does not resolve, and nothing answers on
    127.0.0.1:9. Host candidates still connect peers on one network."""
    ice = ("--ice", "stun:stun.l.google.com:19302,stun:127.0.0.1:9")
    started = time.monotonic()
    chats = [chat_factory(signaler.ws_url, *ice, backend=b) for b in ("libdatachannel", "aiortc")]
    connected(chats)
    assert time.monotonic() - started < 20


def test_force_relay_without_turn_is_a_clear_error(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    chat = chat_factory(signaler.ws_url, "--force-relay")
    assert chat.process.wait(15) != 0
    assert "no TURN server" in chat.logs()


async def test_malformed_signaling_from_a_member_is_ignored(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    """A member with the right key sends broken SDP, candidates and JSON: logged, ignored."""
    victim = chat_factory(signaler.ws_url, names="victim")
    victim.name()
    intruder = SignalingClient(signaler.ws_url, "chatroom", "pw", "mykey", timeout=2)
    session = await intruder.connect()
    await session.send(Introduction("intruder"))
    async with asyncio.timeout(20):
        while True:
            message = await session.receive()
            if isinstance(message, Exchange) and message.type is MessageType.OFFER:
                break
    victim_id = message.sender
    for kind, payload in [
        (MessageType.ANSWER, b'{"type":"answer","sdp":"this is not SDP"}'),
        (MessageType.ANSWER, b"not json at all"),
        (MessageType.CANDIDATE, b"candidate:garbage"),
        (MessageType.CANDIDATE, b"\xff\xfe"),
        (MessageType.OFFER, b'{"type":"offer","sdp":"v=0 nonsense"}'),
    ]:
        await session.send(Exchange(kind, "intruder", victim_id, payload))
    await intruder.close()
    second = chat_factory(signaler.ws_url, names="second")
    connected([victim, second])
    victim.say("still here")
    second.wait_for(f"victim@{PRIMARY}: still here")
    assert "Ignoring" in victim.logs() or "Dropping peer" in victim.logs()


@pytest.mark.parametrize(
    "backends", [("libdatachannel", "libdatachannel"), ("libdatachannel", "aiortc")]
)
def test_force_relay_through_coturn(
    signaler: SignalerProcess, chat_factory: StartChat, tmp_path: Path, backends: tuple[str, str]
) -> None:
    with coturn(tmp_path) as turn:
        chats = [
            chat_factory(signaler.ws_url, "--ice", turn, "--force-relay", backend=backend)
            for backend in backends
        ]
        first_name = connected(chats)[0]
        chats[0].say("relayed")
        chats[1].wait_for(f"{first_name}@{PRIMARY}: relayed")
        sent = [line for line in chats[0].logs().splitlines() if '"Sending candidate"' in line]
        assert sent, "libdatachannel trickles its candidates"
        assert all("typ relay" in line for line in sent), sent


def test_terminal_controls_from_a_peer_are_shown_escaped(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    first = chat_factory(signaler.ws_url)
    second = chat_factory(signaler.ws_url)
    first_name, _ = connected([first, second])
    first.say("clear\x1b[2J bell\x07 café")
    line = second.wait_for(f"{first_name}@{PRIMARY}: clear")
    assert line.endswith("clear\\x1b[2J bell\\x07 café")
    assert "\x1b" not in "".join(second.lines)


@pytest.mark.solo  # times itself, or loads both cores: run alone
@pytest.mark.parametrize("attempt", [1, 2])
def test_ten_members_started_together_reach_a_full_mesh(
    signaler: SignalerProcess, chat_factory: StartChat, attempt: int
) -> None:
    """A crowd negotiating at once (many offers, answers and name claims in flight) must never
    leave a member frozen, nor two members with one name (the younger of two that claim one
    at the same time claims another); the time it took is printed for the record."""
    names = ",".join(f"user{number}" for number in range(1, 11))
    started = time.monotonic()
    chats = [chat_factory(signaler.ws_url, names=names) for _ in range(10)]
    for chat in chats:
        chat.name(timeout=90)

    def settled() -> list[str] | None:
        """Each member's last name, once they are all different and everyone sees them."""
        claimed = [chat.names()[-1] for chat in chats]
        if len(set(claimed)) < len(claimed):
            return None
        for chat, name in zip(chats, claimed, strict=True):
            joined = {line[1:].split("@")[0] for line in chat.output() if line.startswith("+")}
            if not joined >= set(claimed) - {name}:
                return None
        return claimed

    deadline = time.monotonic() + 90
    while (claimed := settled()) is None:
        assert time.monotonic() < deadline, [chat.names() for chat in chats]
        time.sleep(0.5)
    assert sorted(claimed) == sorted(names.split(","))
    renamed = sum(len(chat.names()) - 1 for chat in chats)
    print(
        f"full mesh of 10 members (attempt {attempt}) in {time.monotonic() - started:.1f} s "
        f"({renamed} renamed)"
    )


def piped_chat(
    signaler_url: str, text: str, *args: str, **options: str
) -> subprocess.CompletedProcess[str]:
    """`echo TEXT | weron chat ...` at the default verbosity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WERON_")}
    command = chat_command(signaler_url, *args, verbose="4", **options)
    return subprocess.run(
        command, input=text, capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize("backend", ["libdatachannel", "aiortc"])
def test_a_piped_line_is_sent_once_a_peer_connects(
    signaler: SignalerProcess, chat_factory: StartChat, backend: str
) -> None:
    """`echo "quick line" | weron chat ...`: the line waits for the peer, then leaves before
    the chat exits."""
    receiver = chat_factory(signaler.ws_url, names="receiver")
    receiver.name()
    sent = piped_chat(signaler.ws_url, "quick line\n", names="sender", backend=backend)
    assert sent.returncode == 0, sent.stderr
    receiver.wait_for(f"sender@{PRIMARY}: quick line")
    assert "sent 1 waiting line to receiver" in sent.stderr
    assert "Traceback" not in sent.stderr


def test_a_piped_line_without_a_peer_is_an_error(signaler: SignalerProcess) -> None:
    alone = piped_chat(signaler.ws_url, "quick line\n", names="alone")
    assert alone.returncode != 0
    assert "Error: no peer connected: not sent" in alone.stderr
    assert "Traceback" not in alone.stderr
    assert alone.stdout.splitlines() == [f".{signaler.ws_url}", "alone!"]


def test_a_piped_line_with_an_unreachable_signaler_is_an_error_not_a_hang() -> None:
    """Nothing listens at --raddr: no name is ever claimed. The end of input waits as long
    as a claim can take (here 2 × 2 s + 1 s + 15 s), then fails."""
    started = time.monotonic()
    alone = piped_chat(f"ws://127.0.0.1:{free_port()}/", "quick line\n", names="alone")
    assert alone.returncode != 0
    assert "Error: no peer connected: not sent (1 line, no name claimed within 20s" in (
        alone.stderr
    )
    assert "Traceback" not in alone.stderr
    print(f"gave up after {time.monotonic() - started:.1f} s")


def test_an_unresolvable_signaler_name_ends_quietly() -> None:
    """Nothing to send, a signaler name that cannot resolve (RFC 2606 .invalid): the chat
    ends at once, without asyncio's "Future exception was never retrieved" noise."""
    done = piped_chat("ws://signaler.invalid/", "", names="alone")
    assert done.returncode == 0, done.stderr
    assert "never retrieved" not in done.stderr and "Traceback" not in done.stderr


def test_a_line_typed_while_alone_waits_for_the_first_peer(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    early = chat_factory(signaler.ws_url, names="early")
    early.name()
    early.say("anyone here?")
    early.wait_for_stderr("nobody connected yet: lines wait for the first peer that joins")
    late = chat_factory(signaler.ws_url, names="late")
    late.wait_for(f"early@{PRIMARY}: anyone here?")
    early.wait_for_stderr(f"sent 1 waiting line to late@{PRIMARY}")
    early.say("and now live")
    late.wait_for(f"early@{PRIMARY}: and now live")
    assert late.lines.count(f"early@{PRIMARY}: anyone here?") == 1


def silent_server() -> tuple[socket.socket, int]:
    """A TCP server that accepts connections and never answers (a WebSocket handshake hangs)."""
    server = socket.create_server(("127.0.0.1", 0))
    port: int = server.getsockname()[1]
    return server, port


@pytest.mark.parametrize("where", ["default", "refused", "silent"])
def test_an_unreachable_signaler_is_said_once_within_seconds(where: str) -> None:
    """The default --raddr (the original author's server: no internet here), a closed port,
    and a host that never answers: one warning with what to do, within a few seconds, at the
    default verbosity; the chat keeps trying."""
    server, port = silent_server()
    raddr = {"refused": f"ws://127.0.0.1:{free_port()}/", "silent": f"ws://127.0.0.1:{port}/"}
    if where == "default":
        try:
            socket.getaddrinfo(urllib.parse.urlsplit(DEFAULT_RADDR).hostname, 443)
            pytest.skip("the default signaler's name resolves here: it may be reachable")
        except OSError:
            pass
    args = ["--raddr", raddr[where]] if where in raddr else []
    command = [*WERON, "chat", *args, "--community", "c", "--password", "p", "--key", "k"]
    command += ["--names", "alone", "--timeout", "30s"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WERON_")}
    started = time.monotonic()
    with (
        server,
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        ) as chat,
    ):
        assert chat.stderr is not None
        line = chat.stderr.readline().decode()
        said_after = time.monotonic() - started
        time.sleep(4)  # more attempts, not more warnings
        chat.kill()
        rest = chat.stderr.read().decode()
    record = json.loads(line)
    assert record["message"].startswith("Cannot reach the")
    assert record["fix"] == "start one with `weron signaler`, then pass --raddr ws://HOST:1337/"
    if where == "default":
        assert "the original author's public server" in record["message"]
    assert said_after < 6, f"said after {said_after:.1f}s"
    assert "Cannot reach" not in rest and "Traceback" not in rest


def test_a_lone_member_is_told_that_another_key_is_invisible(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    member = chat_factory(signaler.ws_url, names="member")
    outsider = chat_factory(signaler.ws_url, names="outsider", key="another key")
    member.name()
    outsider.name()
    hint = "members with another --key (or --community) cannot see each other"
    outsider.wait_for_stderr(hint)
    member.wait_for_stderr(hint)
    time.sleep(3)  # said once
    assert outsider.logs().count(hint) == 1


def test_in_a_terminal_lines_are_separate_and_the_typed_line_is_redrawn(
    signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    """Status, joins, messages, notices and log lines (here at -v 6) each on rows of their
    own; a message arriving while typing leaves the typed text on the prompt; after the end,
    the shell's prompt gets a fresh row."""
    alice = TerminalChat(chat_command(signaler.ws_url, names="alice"))
    try:
        alice.wait_for_row("claiming a name… (")
        alice.wait_until(lambda: alice.cursor_row() == "alice> ", "alice's prompt")
        bob = chat_factory(signaler.ws_url, names="bob")
        alice.wait_for_row(f"+bob@{PRIMARY}")
        alice.type("half a li")
        bob.say("hello alice")
        alice.wait_for_row(f"bob@{PRIMARY}: hello alice")
        assert alice.cursor_row() == "alice> half a li"
        alice.type("ne\n")
        bob.wait_for(f"alice@{PRIMARY}: half a line")
        alice.type("\x04")
        assert alice.process.wait(15) == 0
        alice.wait_until(lambda: alice.cursor_row() == "", "the prompt erased")
        rows = alice.rows()
        assert f".{signaler.ws_url}" in rows  # after the log line naming the WebRTC engine
        assert "alice!" in rows and "alice> half a line" in rows
        for row in rows:
            assert not row.startswith("{") or row.endswith("}"), row  # a log line, whole
            assert "{" not in row or row.startswith("{"), row  # glued to nothing
    finally:
        alice.stop()
