"""`gonet --dht`: members meet through a private DHT on loopback, with no signaler at all."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.chat import GonetProcess
from tests.e2e.dht import dht_nodes, write_fake_records, write_records
from tests.unit.fakes import key_preferring
from weron.rendezvous.card import Card
from weron.rendezvous.slots import SLOTS
from weron.wireguard.keys import encode_key
from weron.wireguard.nat.paths import Candidate, Kind

StartGonet = Callable[..., GonetProcess]
NO_SIGNALER = "ws://127.0.0.1:9/"  # nothing listens there: the DHT is the only rendezvous


def test_two_members_meet_through_the_dht_and_another_key_meets_nobody(
    gonet_factory: StartGonet,
) -> None:
    with dht_nodes(4) as nodes:
        bootstrap = [
            arg for host, port in nodes[:2] for arg in ("--dht-bootstrap", f"{host}:{port}")
        ]

        def start(room: str, name: str) -> GonetProcess:
            return gonet_factory(
                NO_SIGNALER, room, "--dht", *bootstrap, "--name", name, "--timeout", "10s"
            )

        alice = start("lobby/dht-room/secret", "alice")
        bob = start("lobby/dht-room/secret", "bob")
        mallory = start("lobby/dht-room/wrong-key", "mallory")
        alice.wait_for("+bob", timeout=60)
        bob.wait_for("+alice", timeout=60)
        alice.say("hello over the dht")
        bob.wait_for("alice: hello over the dht")
        bob.say("hi alice")
        alice.wait_for("bob: hi alice")
        mallory.say("anyone?")
        assert bob.stop() == 0
        alice.wait_for("-bob")
        mallory.wait_for("mallory!", timeout=60)  # its record stored: other items altogether
        assert mallory.output() == [".dht", "mallory!"]
        assert not any("mallory" in line or "anyone" in line for line in alice.output())
        assert alice.stop() == 0 and mallory.stop() == 0


def test_fake_records_written_by_a_member_who_left_keep_nobody_apart(
    gonet_factory: StartGonet,
) -> None:
    """Every slot holds a record of a member that does not exist: half published "ten years
    from now" (once "expires in ten years": ignored now), half published just now (live for
    a minute: the stalest is replaced). Two honest members still meet."""
    room = "lobby/locked-room/secret"
    with dht_nodes(4) as nodes:
        now = time.time()
        write_fake_records(
            nodes, room, [now + 10 * 365 * 86400] * (SLOTS // 2) + [now] * (SLOTS // 2)
        )
        bootstrap = [
            arg for host, port in nodes[:2] for arg in ("--dht-bootstrap", f"{host}:{port}")
        ]
        alice, bob = (
            gonet_factory(NO_SIGNALER, room, "--dht", *bootstrap, "--name", name)
            for name in ("alice", "bob")
        )
        # A lookup on this four-node DHT can take its full 10 s, more under a loaded suite.
        alice.wait_for("+bob", timeout=120)
        bob.wait_for("+alice", timeout=60)
        alice.say("the room is not locked")
        bob.wait_for("alice: the room is not locked")
        assert "Every DHT slot of the room is taken" not in alice.logs() + bob.logs()


def test_cards_forged_in_the_members_names_are_tried_and_harmless(
    gonet_factory: StartGonet, tmp_path: Path
) -> None:
    """A member with the room key writes, before bob and carol come, cards with each one's
    key and addresses of its own (sockets this test holds on loopback), in the slots on both
    sides of the member's own, so that a forged card is read first and another last. Bob and
    carol meet and chat all the same, and what the forged addresses get is handshake
    initiations that nobody there can answer. (The whole stack; the rule that a card only
    adds candidates is pinned by the unit tests: this DHT's lookups miss records now and
    then, which let the old code meet too.)"""
    room = "lobby/forged-room/secret"
    own_slots = {"bob": 2, "carol": 5}
    keys = {name: key_preferring(slot) for name, slot in own_slots.items()}
    for name, key in keys.items():
        (tmp_path / f"{name}.key").write_text(encode_key(key.raw()) + "\n")
    with contextlib.ExitStack() as stack, dht_nodes(4) as nodes:
        forged: dict[int, socket.socket] = {}
        records: dict[int, tuple[Card, float]] = {}
        now = time.time()
        for name, own in own_slots.items():
            for slot in (own - 1, own + 1):
                forged[slot] = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                forged[slot].bind(("127.0.0.1", 0))
                forged[slot].setblocking(False)
                address = Candidate(Kind.HOST, forged[slot].getsockname())
                records[slot] = (Card(keys[name].public, (address,)), now)
        write_records(nodes, room, records)
        bootstrap = [
            arg for host, port in nodes[:2] for arg in ("--dht-bootstrap", f"{host}:{port}")
        ]
        bob, carol = (
            gonet_factory(
                NO_SIGNALER,
                room,
                *("--dht", *bootstrap, "--name", name, "--identity", str(tmp_path / f"{name}.key")),
            )
            for name in keys
        )
        bob.wait_for("+carol", timeout=120)
        carol.wait_for("+bob", timeout=60)
        bob.say("the forged cards changed nothing")
        carol.wait_for("bob: the forged cards changed nothing")
        carol.say("nothing at all")
        bob.wait_for("carol: nothing at all")
        assert "~carol relay" not in bob.output() and "~bob relay" not in carol.output()
        for sock in forged.values():
            with contextlib.suppress(BlockingIOError):
                while True:
                    assert sock.recv(2048)[:4] == b"\x01\x00\x00\x00"  # an initiation
