"""`weron vpn ethernet`: ARP and IPv6 neighbour discovery across the overlay."""

from __future__ import annotations

from tests.netlab.conftest import Network, start_hostile


def test_two_members_ping_over_ipv4_and_ipv6_with_addresses_added_by_hand(
    network: Network,
) -> None:
    lab, start = network.lab, network.start
    first = start("ethernet", "--mac", "3a:f8:de:7b:ef:52", dev="tap7")
    second = start("eth", dev="tap7")
    for member in (first, second):
        member.wait_for("Connected to signaler")
        member.wait_for("Connected to peer")
    assert first.wait_for("Connected to signaler")["id"] == "3a:f8:de:7b:ef:52"
    assert second.wait_for("Connected to peer")["id"] == "3a:f8:de:7b:ef:52"
    for number, member in enumerate((first, second), start=1):
        for address in (f"10.90.0.{number}/24", f"fd00:90::{number}/64"):
            result = lab.run(
                member.host.namespace, ["ip", "addr", "add", address, "dev", "tap7", "nodad"]
            )
            assert result.returncode == 0, result.stderr
    assert first.ping("10.90.0.2") and second.ping("10.90.0.1")
    assert first.ping("fd00:90::2") and second.ping("fd00:90::1")
    neighbours = lab.run(first.host.namespace, ["ip", "neigh", "show", "dev", "tap7"]).stdout
    assert "10.90.0.2" in neighbours and "fd00:90::2" in neighbours  # ARP and ND crossed
    first.stop()
    assert first.wait_for("Stopped")["spoofed"] == 0


def test_a_bad_mac_is_a_clear_error(network: Network) -> None:
    start = network.start
    member = start("ethernet", "--mac", "01:00:5e:00:00:01", dev="tap8")
    assert member.process.wait(timeout=60) == 1
    assert "is a multicast address" in member.output()


def test_a_group_mac_as_id_and_frames_posing_as_another_member_get_nowhere(
    network: Network,
) -> None:
    """Issue 12: one hostile member's id is the broadcast MAC (it would take every ARP
    request); another sends frames from the second member's MAC, and to it through the first."""
    lab, start = network.lab, network.start
    first = start("ethernet", "--mac", "3a:f8:de:7b:ef:61", dev="tap9")
    second = start("ethernet", "--mac", "3a:f8:de:7b:ef:62", dev="tap9")
    for member in (first, second):
        member.wait_for("Connected to peer")
    start_hostile(network, "--id", "ff:ff:ff:ff:ff:ff")
    poser = start_hostile(
        network,
        *("--id", "3a:f8:de:7b:ef:63"),
        *("--probe", "3a:f8:de:7b:ef:62,3a:f8:de:7b:ef:61"),  # from the second member's MAC
        *("--probe", "3a:f8:de:7b:ef:63,3a:f8:de:7b:ef:62"),  # to the second, sent to the first
    )
    refusal = first.wait_for("Ignoring peer")
    assert refusal["id"] == "ff:ff:ff:ff:ff:ff" and "group" in refusal["reason"]
    for number, member in enumerate((first, second), start=1):
        lab.run(member.host.namespace, ["ip", "addr", "add", f"10.91.0.{number}/24", "dev", "tap9"])
    assert first.ping("10.91.0.2") and second.ping("10.91.0.1")  # ARP went to the second
    poser.wait_for("channel")
    first.wait_for("Dropping packets with a source not routed to the peer")
    first.wait_for("Dropping packets from a peer to a destination that is not ours")
    first.stop()
    stopped = first.wait_for("Stopped")
    assert stopped["spoofed"] >= 1 and stopped["misdirected"] >= 1, stopped
