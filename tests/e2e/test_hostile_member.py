"""A member with the right key that floods, forges, kicks and echoes claims
(tests/e2e/hostile.py) against real `weron chat` members: they keep talking, keep their
connections and get their names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.chat import ChatProcess
from tests.e2e.processes import SignalerProcess
from tests.e2e.test_chat import PRIMARY, connected

pytestmark = pytest.mark.e2e

StartChat = Callable[..., ChatProcess]
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def hostile(
    signaler: SignalerProcess,
    tmp_path: Path,
    *args: str,
    community: tuple[str, str, str] = ("chatroom", "pw", "mykey"),
) -> Iterator[subprocess.Popen[str]]:
    """tests/e2e/hostile.py in ``community`` (name, password, key), once it said "ready"."""
    name, password, key = community
    command = [
        sys.executable,
        "-m",
        "tests.e2e.hostile",
        "--raddr",
        signaler.ws_url,
        "--community",
        name,
        "--password",
        password,
        "--key",
        key,
        *args,
    ]
    log = (tmp_path / f"hostile-{time.monotonic_ns()}.log").open("wb")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, env=dict(os.environ)
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", "the hostile member did not start"
        yield process
    finally:
        process.kill()
        process.wait()
        log.close()


def open_fds(chat: ChatProcess) -> int:
    return len(os.listdir(f"/proc/{chat.process.pid}/fd"))


def rss_kib(chat: ChatProcess) -> int:
    for line in Path(f"/proc/{chat.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def member_id(chat: ChatProcess) -> str:
    """The member's id on the signaler (the named adapter logs it at debug level)."""
    for line in chat.logs().splitlines():
        if '"message":"Connected to signaler"' in line and '"level":"debug"' in line:
            return str(json.loads(line)["id"])
    raise AssertionError(f"no id in the log: {chat.logs()[-1000:]}")


def talk(speaker: ChatProcess, listener: ChatProcess, text: str) -> None:
    speaker.say(text)
    listener.wait_for(f"@{PRIMARY}: {text}", timeout=15)


def test_introduction_floods_leave_members_talking_and_their_fds_at_baseline(
    signaler: SignalerProcess, chat_factory: StartChat, tmp_path: Path
) -> None:
    first = chat_factory(signaler.ws_url, names="first")
    second = chat_factory(signaler.ws_url, names="second")
    connected([first, second])
    time.sleep(1)
    baseline = {chat: open_fds(chat) for chat in (first, second)}
    for round_number in range(2):
        with hostile(signaler, tmp_path, "introductions", "300"):
            for line in range(3):
                talk(first, second, f"flood {round_number} line {line}")
                talk(second, first, f"answer {round_number} line {line}")
            # Each bogus id costs a connection for --timeout (2 s), 64 at a time at most.
            deadline = time.monotonic() + 40
            while any(open_fds(chat) > count + 2 for chat, count in baseline.items()):
                assert time.monotonic() < deadline, (
                    f"fds {[open_fds(chat) for chat in baseline]}, baseline {baseline}"
                )
                time.sleep(0.5)
    talk(first, second, "after the floods")
    print(
        f"after two floods of 300 introductions: fds {[open_fds(c) for c in baseline]} "
        f"(baseline {list(baseline.values())}), RSS KiB {[rss_kib(c) for c in baseline]}"
    )
    for chat in (first, second):
        assert chat.process.poll() is None
        assert not any(line.startswith("-") for line in chat.lines), chat.lines


def test_forged_introductions_tear_down_no_connection(
    signaler: SignalerProcess, chat_factory: StartChat, tmp_path: Path
) -> None:
    first = chat_factory(signaler.ws_url, names="first")
    second = chat_factory(signaler.ws_url, names="second")
    connected([first, second])
    with hostile(signaler, tmp_path, "forge", member_id(first), member_id(second)):
        for line in range(10):
            talk(first, second, f"forged {line}")
            time.sleep(0.3)
    for chat in (first, second):
        assert not any(line.startswith("-") for line in chat.lines), chat.lines
        assert "Replaced connection" not in chat.logs()


def test_unsolicited_kicks_keep_no_newcomer_from_a_name(
    signaler: SignalerProcess, chat_factory: StartChat, tmp_path: Path
) -> None:
    names = "user1,user2,user3"
    first = chat_factory(signaler.ws_url, names=names)
    assert first.name() == "user1"
    with hostile(signaler, tmp_path, "kick", *names.split(",")):
        time.sleep(1)
        newcomer = chat_factory(signaler.ws_url, names=names)
        assert newcomer.name() == "user2"
        connected([first, newcomer])
        talk(newcomer, first, "named despite the kicks")


def test_claims_echoed_by_an_older_member_cost_at_most_three_names(
    signaler: SignalerProcess, chat_factory: StartChat, tmp_path: Path
) -> None:
    """A name claimed at the same time by an older member is given up, and peers connect
    again under the new name; a member echoing every claim gets three names at most."""
    with hostile(signaler, tmp_path, "echo-claims", "1"):
        time.sleep(1)
        members = [
            chat_factory(signaler.ws_url, names=",".join(f"{who}{n}" for n in range(1, 6)))
            for who in ("alice", "bob")
        ]
        for chat, who in zip(members, ("alice", "bob"), strict=True):
            chat.wait_for(f"{who}4!", timeout=60)
        alice, bob = members
        bob.wait_for(f"+alice4@{PRIMARY}", timeout=30)
        alice.wait_for(f"+bob4@{PRIMARY}", timeout=30)
        talk(alice, bob, "named after three rounds")
        talk(bob, alice, "me too")
        time.sleep(2)
        for chat, who in zip(members, ("alice", "bob"), strict=True):
            assert chat.names() == [f"{who}{n}" for n in range(1, 5)]
            assert chat.logs().count("claiming another") == 3
