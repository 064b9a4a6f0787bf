"""`gonet --dht`: members meet through a private DHT on loopback, with no signaler at all."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.chat import GonetProcess
from tests.e2e.dht import dht_nodes

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
        assert mallory.output() == [".dht", "mallory!"]
        assert not any("mallory" in line or "anyone" in line for line in alice.output())
        assert alice.stop() == 0 and mallory.stop() == 0
