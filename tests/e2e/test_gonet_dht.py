"""`gonet --dht`: members meet through a private DHT on loopback, with no signaler at all."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.chat import GonetProcess
from tests.e2e.dht import dht_nodes, write_fake_records
from weron.rendezvous.slots import SLOTS

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
