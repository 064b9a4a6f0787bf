"""`gonet` processes chatting over WireGuard through our signaler."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.chat import GONET, GonetProcess
from tests.e2e.conftest import StartSignaler
from tests.e2e.processes import free_port
from tests.e2e.test_hostile_member import hostile
from weron.rendezvous.room import Room, derive
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.keys import encode_key

ROOM = "lobby/room/secret"
StartGonet = Callable[..., GonetProcess]


def test_three_members_chat_a_wrong_key_sees_nothing_and_leaving_is_announced(
    signaler_factory: StartSignaler, gonet_factory: StartGonet
) -> None:
    signaler = signaler_factory()
    names = ("alice", "bob", "carol")
    members = {
        name: gonet_factory(signaler.ws_url, ROOM, "--name", name, "--timeout", "5s")
        for name in names
    }
    stranger = gonet_factory(signaler.ws_url, "lobby/room/another-key", "--name", "mallory")
    for name, member in members.items():
        assert member.wait_for("!") == f"{name}!"
        for other in names:
            if other != name:
                member.wait_for(f"+{other}")
    assert stranger.wait_for("!") == "mallory!"

    members["alice"].say("hello everyone")
    members["bob"].wait_for("alice: hello everyone")
    members["carol"].wait_for("alice: hello everyone")
    members["bob"].say("control \x1b[2J characters \x07 stay home")
    members["bob"].wait_for("!not sent")
    stranger.say("can anyone hear me?")
    members["carol"].say("see you")
    members["alice"].wait_for("carol: see you")
    members["bob"].wait_for("carol: see you")

    assert members["carol"].stop() == 0  # end of input: carol leaves
    members["alice"].wait_for("-carol")
    members["bob"].wait_for("-carol")
    members["alice"].say("still here")
    members["bob"].wait_for("alice: still here")

    # The stranger met nobody: only its own banner, no joins, no messages.
    assert stranger.output() == [f".{signaler.ws_url}", "mallory!"]
    for name in ("alice", "bob"):
        output = members[name].output()
        assert not any("mallory" in line or "can anyone" in line for line in output), output
        assert not any("\x1b" in line or "\x07" in line for line in output)
    assert stranger.stop() == 0


def test_malformed_arguments_print_usage_and_exit_2() -> None:
    for args in (["no-slashes"], ["lobby//key"], ["a/b/c", "--name", "bad name!"], []):
        result = subprocess.run(
            [*GONET, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 2, (args, result.stderr)
        assert "Usage: gonet" in result.stderr


def test_a_member_rejoining_with_its_identity_is_announced_again(
    signaler_factory: StartSignaler, gonet_factory: StartGonet, tmp_path: Path
) -> None:
    signaler = signaler_factory()
    identity = tmp_path / "bob.key"
    alice = gonet_factory(signaler.ws_url, ROOM, "--name", "alice")
    bob = gonet_factory(signaler.ws_url, ROOM, "--name", "bob", "--identity", str(identity))
    alice.wait_for("+bob")
    assert bob.stop() == 0
    alice.wait_for("-bob")
    key = identity.read_text()
    bob = gonet_factory(signaler.ws_url, ROOM, "--name", "bob", "--identity", str(identity))
    bob.wait_for("+alice")
    assert identity.read_text() == key
    bob.say("back again")
    alice.wait_for("bob: back again")
    assert [line for line in alice.output() if line == "+bob"] == ["+bob", "+bob"]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
def test_a_member_ended_by_a_signal_says_goodbye(
    signaler_factory: StartSignaler, gonet_factory: StartGonet, signum: signal.Signals
) -> None:
    """SIGTERM, and SIGHUP (its terminal closed), end a member as the end of its input does:
    its leaving is announced, so alice (whose --timeout is a minute) shows it at once. Before,
    SIGHUP killed it, and alice saw it go only when the timeout was over."""
    signaler = signaler_factory()
    alice = gonet_factory(signaler.ws_url, ROOM, "--name", "alice", "--timeout", "60s")
    bob = gonet_factory(signaler.ws_url, ROOM, "--name", "bob")
    alice.wait_for("+bob")
    bob.process.send_signal(signum)
    assert bob.process.wait(15) == 0
    alice.wait_for("-bob", timeout=20)
    assert "Traceback" not in bob.logs()


def test_a_member_back_under_another_name_is_announced_as_renamed(
    signaler_factory: StartSignaler, gonet_factory: StartGonet, tmp_path: Path
) -> None:
    """Bob is killed (no goodbye) and comes back with his identity and another name before
    alice's --timeout: his key is the same member's, shown under its new name."""
    signaler = signaler_factory()
    identity = tmp_path / "bob.key"
    alice = gonet_factory(signaler.ws_url, ROOM, "--name", "alice", "--timeout", "60s")
    bob = gonet_factory(signaler.ws_url, ROOM, "--name", "bob", "--identity", str(identity))
    alice.wait_for("+bob")
    bob.kill()
    robert = gonet_factory(signaler.ws_url, ROOM, "--name", "robert", "--identity", str(identity))
    alice.wait_for("*bob is now robert")
    robert.say("call me robert")
    alice.wait_for("robert: call me robert")
    assert "-bob" not in alice.output()


def test_an_unusable_identity_file_is_a_clear_error(tmp_path: Path) -> None:
    identity = tmp_path / "identity"
    identity.write_text("this is not a key\n")
    result = subprocess.run(
        [*GONET, "--identity", str(identity), "--raddr", "ws://127.0.0.1:9/", "a/b/c"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "does not hold a private key" in result.stderr and "Traceback" not in result.stderr


def test_no_name_is_shown_before_the_signaler_let_us_in(
    signaler_factory: StartSignaler, gonet_factory: StartGonet
) -> None:
    """Unreachable signaler: said, and no name shown as ours; the name once it is reached."""
    port = free_port()
    raddr = f"ws://127.0.0.1:{port}/"
    member = gonet_factory(raddr, ROOM, "--name", "alice")
    member.wait_for_stderr("Cannot reach the signaler; still trying")
    assert member.output() == [f".{raddr}"]
    signaler_factory(port=port)
    member.wait_for("alice!")
    assert member.output() == [f".{raddr}", "alice!"]


def test_a_line_to_a_member_killed_mid_chat_is_reported_not_delivered(
    signaler_factory: StartSignaler, gonet_factory: StartGonet
) -> None:
    signaler = signaler_factory()
    members = {
        name: gonet_factory(signaler.ws_url, ROOM, "--name", name, "--timeout", "5s")
        for name in ("alice", "bob", "carol")
    }
    alice, bob, carol = members.values()
    alice.wait_for("+bob")
    alice.wait_for("+carol")
    alice.say("before")
    bob.wait_for("alice: before")
    carol.wait_for("alice: before")

    bob.kill()  # no goodbye: alice learns only from the missing acks
    alice.say("after bob is gone")
    carol.wait_for("alice: after bob is gone")
    report = alice.wait_for("!not delivered", timeout=5 + 3)
    assert report == "!not delivered to bob: after bob is gone"
    assert not any("not delivered" in line for line in carol.output())
    assert [line for line in alice.output() if "not delivered" in line] == [report]
    assert alice.stop() == 0 and carol.stop() == 0


def test_cards_forged_through_the_signaler_before_and_after_the_genuine_ones_are_harmless(
    signaler_factory: StartSignaler, gonet_factory: StartGonet, tmp_path: Path
) -> None:
    """Mallory has the room key (tests/e2e/hostile.py, gonet-cards): each member's first cards
    of the other are MAX_CARDS she wrote in its name, filling every slot, and one she signed
    with her own key (bob is held with SIGSTOP while carol joins, so that hers reach carol
    before bob's offer), and right after each genuine card passes by she writes MAX_CARDS
    more, to sockets of hers. Bob and carol meet and chat all the same: the genuine card is
    signed by its key, so it takes the place of every unsigned one, and the cards after it
    are ignored; the one signed by the wrong key is ignored as forged. (Unsigned, the genuine
    card was refused while the forged ones were on trial, and they never met.)"""
    signaler = signaler_factory()
    keys = {name: PrivateKey.generate() for name in ("bob", "carol")}
    for name, key in keys.items():
        (tmp_path / f"{name}.key").write_text(encode_key(key.raw()) + "\n")
    ids = [encode_key(key.public) for key in keys.values()]
    secrets = derive(Room.parse(ROOM))
    community = (secrets.community, secrets.password, secrets.signaling_key)

    def start(name: str) -> GonetProcess:
        identity = str(tmp_path / f"{name}.key")
        return gonet_factory(signaler.ws_url, ROOM, "--name", name, "--identity", identity)

    place = f"--place={secrets.place.hex()}"
    with hostile(signaler, tmp_path, "gonet-cards", place, *ids, community=community) as mallory:
        assert mallory.stdout is not None
        bob = start("bob")
        assert mallory.stdout.readline().split() == ["answered", ids[0]]
        os.kill(bob.process.pid, signal.SIGSTOP)
        try:
            carol = start("carol")
            assert mallory.stdout.readline().split() == ["answered", ids[1]]
        finally:
            os.kill(bob.process.pid, signal.SIGCONT)
        bob.wait_for("+carol")
        carol.wait_for("+bob")
        bob.say("forged cards changed nothing")
        carol.wait_for("bob: forged cards changed nothing")
        for member in (bob, carol):
            member.wait_for_log("Ignoring an unsigned card for a key whose cards are signed")
            member.wait_for_log("Ignoring a card its key did not sign (forged)")
