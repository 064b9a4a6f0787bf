"""`weron vpn ip` with TUN offloads and `weron vpn ethernet` with TAP offloads: super-packets
(super-frames) between members that both have them, plain packets to a member without (as to a
Go peer), and a hostile member's lying header refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.netlab.conftest import Member, Network, start_hostile
from tests.netlab.test_offload_kernel import _UDP_CLIENT, _UDP_SEGMENT, _UDP_SEND, _UDP_SERVER
from tests.netlab.test_vpn_ip import connected

IPS = "10.84.0.1/24,fd00:84::1/64"


@pytest.fixture(autouse=True)
def _iperf3() -> None:
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3 (Debian package iperf3)")


def iperf3(network: Network, client: Member, server: Member, version: int) -> int:
    """Bytes received by ``server`` from ``client`` in one second of iperf3 TCP, then as many
    the other way (``-R``)."""
    (address,) = server.addresses(version)
    received = 0
    for reverse in ([], ["-R"]):
        listening = network.lab.start(server.host.namespace, ["iperf3", "-s", "-1", "-B", address])
        while not network.lab.listening(server.host.namespace, 5201):
            assert listening.poll() is None
        result = network.lab.run(
            client.host.namespace, ["iperf3", "-c", address, "-t", "1", "-J", *reverse]
        )
        network.lab.stop(listening)
        report = json.loads(result.stdout)
        assert "error" not in report, report["error"]
        received += report["end"]["sum_received"]["bytes"]
    return received


def udp_datagrams(network: Network, client: Member, server: Member, version: int) -> int:
    """Datagrams ``server`` got of those a UDP_SEGMENT sender on ``client`` sent (8 per
    send: UDP super-packets, where the device has USO)."""
    (address,) = server.addresses(version)
    argv = [sys.executable, "-u", "-c", _UDP_SERVER, address]
    listening = network.lab.start(server.host.namespace, argv, log=subprocess.PIPE)
    try:
        time.sleep(0.5)  # bound
        argv = [sys.executable, "-c", _UDP_CLIENT, address]
        sent = network.lab.run(client.host.namespace, argv, timeout=60)
        assert sent.returncode == 0, sent.stderr
        received, _ = listening.communicate(timeout=30)
    finally:
        network.lab.stop(listening)
    return int(received.split()[0])


def iperf3_udp(network: Network, client: Member, server: Member) -> int:
    """Bytes ``server`` received of one second of iperf3 UDP at 50 Mbit/s (iperf3 before
    3.19 sends no UDP super-packets: this is the plain datagram path, both ways with -R)."""
    (address,) = server.addresses(4)
    received = 0
    for reverse in ([], ["-R"]):
        argv = ["iperf3", "-s", "-1", "-B", address]
        listening = network.lab.start(server.host.namespace, argv)
        while not network.lab.listening(server.host.namespace, 5201):
            assert listening.poll() is None
        argv = ["iperf3", "-c", address, "-u", "-b", "50M", "-t", "1", "-J", *reverse]
        result = network.lab.run(client.host.namespace, argv)
        network.lab.stop(listening)
        report = json.loads(result.stdout)
        assert "error" not in report, report["error"]
        received += report["end"]["sum"]["bytes"] * (100 - report["end"]["sum"]["lost_percent"])
    return int(received / 100)


def udp_sent() -> int:
    return _UDP_SEND * _UDP_SEGMENT


def stopped(member: Member) -> dict[str, int]:
    assert member.stop() == 0
    return member.wait_for("Stopped")


def test_members_with_offloads_exchange_super_packets(network: Network) -> None:
    first = network.start("ip", "--ips", IPS, "--kicks", "1s")
    second = network.start("ip", "--ips", IPS, "--kicks", "1s")
    connected(first, second, peers=1)
    moved = iperf3(network, first, second, 4) + iperf3(network, first, second, 6)
    assert moved > 4_000_000
    counters = stopped(first)
    # Whole super-packets: far fewer messages than 1,420-byte packets would take.
    assert moved / (counters["sent"] + counters["received"]) > 3_000, counters
    assert counters["cut"] == 0 and counters["malformed"] == 0


def test_a_member_without_offloads_gets_plain_packets(network: Network) -> None:
    first = network.start("ip", "--ips", IPS, "--kicks", "1s")
    plain = network.start("ip", "--ips", IPS, "--kicks", "1s", "--offload=false")
    connected(first, plain, peers=1)
    assert iperf3(network, first, plain, 4) + iperf3(network, plain, first, 6) > 4_000_000
    counters = stopped(first)
    assert counters["cut"] > 0 and counters["malformed"] == 0 and counters["too_big"] == 0


def test_a_lying_offload_header_is_refused_with_a_log_line(network: Network) -> None:
    member = network.start("ip", "--ips", "10.85.0.1/24", "--kicks", "1s")
    member.wait_for_claimed_addresses()
    (target,) = member.addresses(4)
    hostile = start_hostile(
        network, "--claim", '["10.85.0.250/24"]', "--probe", f"10.85.0.250,{target}",
        "--lying-offload",
    )  # fmt: skip
    hostile.wait_for("channel")
    member.wait_for("Dropping packets with an offload header that lies")
    assert member.process.poll() is None
    hostile.stop()
    assert stopped(member)["malformed"] >= 1


def ethernet_members(network: Network, *second: str) -> tuple[Member, Member]:
    """Two vpn ethernet members on tap5 (10.86.0.1-2/24, fd00:86::1-2/64) that reach each
    other; ``second``: the second one's flags."""
    first_member = network.start("ethernet", dev="tap5")
    second_member = network.start("ethernet", *second, dev="tap5")
    members = (first_member, second_member)
    for number, member in enumerate(members, start=1):
        member.wait_for("Connected to peer")
        for address in (f"10.86.0.{number}/24", f"fd00:86::{number}/64"):
            argv = ["ip", "addr", "add", address, "dev", "tap5", "nodad"]
            assert network.lab.run(member.host.namespace, argv).returncode == 0
    assert first_member.ping("10.86.0.2") and first_member.ping("fd00:86::2")
    return members


def test_ethernet_members_with_offloads_exchange_super_frames(network: Network) -> None:
    first, second = ethernet_members(network)
    moved = iperf3(network, first, second, 4) + iperf3(network, second, first, 6)
    assert moved > 4_000_000
    counters = stopped(first)
    assert moved / (counters["sent"] + counters["received"]) > 3_000, counters
    assert counters["cut"] == 0 and counters["malformed"] == 0


def test_an_ethernet_member_without_offloads_gets_plain_frames(network: Network) -> None:
    first, plain = ethernet_members(network, "--offload=false")
    assert iperf3(network, first, plain, 4) + iperf3(network, plain, first, 6) > 4_000_000
    counters = stopped(first)
    assert counters["cut"] > 0 and counters["malformed"] == 0 and counters["too_big"] == 0
    assert stopped(plain)["malformed"] == 0


def test_a_lying_offload_header_on_a_frame_is_refused_with_a_log_line(network: Network) -> None:
    member = network.start("ethernet", "--mac", "3a:f8:de:7b:ef:71", dev="tap6")
    member.wait_for("Connected to signaler")
    hostile = start_hostile(
        network, "--id", "3a:f8:de:7b:ef:72", "--probe", "3a:f8:de:7b:ef:72,3a:f8:de:7b:ef:71",
        "--lying-offload",
    )  # fmt: skip
    hostile.wait_for("channel")
    member.wait_for("Dropping packets with an offload header that lies")
    assert member.process.poll() is None
    hostile.stop()
    assert stopped(member)["malformed"] >= 1


def test_members_with_offloads_exchange_udp_super_packets(network: Network) -> None:
    first = network.start("ip", "--ips", IPS, "--kicks", "1s")
    second = network.start("ip", "--ips", IPS, "--kicks", "1s")
    connected(first, second, peers=1)
    for version in (4, 6):  # UDP loses some on a loaded machine; wrong cutting loses all
        assert udp_datagrams(network, first, second, version) > udp_sent() // 2
    counters = stopped(first)
    assert counters["sent"] < udp_sent(), counters  # 8 datagrams a message
    assert counters["cut"] == 0 and counters["malformed"] == 0


def test_a_member_without_offloads_gets_plain_datagrams(network: Network) -> None:
    first = network.start("ip", "--ips", IPS, "--kicks", "1s")
    plain = network.start("ip", "--ips", IPS, "--kicks", "1s", "--offload=false")
    connected(first, plain, peers=1)
    assert udp_datagrams(network, first, plain, 6) > udp_sent() // 2
    assert udp_datagrams(network, plain, first, 4) > udp_sent() // 2
    assert iperf3_udp(network, first, plain) > 5_000_000
    counters = stopped(first)
    assert counters["cut"] >= _UDP_SEND // 2 and counters["malformed"] == 0


def test_ethernet_members_exchange_udp_super_frames_and_cut_them_for_others(
    network: Network,
) -> None:
    first, second = ethernet_members(network)
    assert udp_datagrams(network, first, second, 4) > udp_sent() // 2
    assert udp_datagrams(network, second, first, 6) > udp_sent() // 2
    counters = stopped(first)
    assert counters["sent"] < udp_sent() and counters["cut"] == 0, counters
    plain = network.start("ethernet", "--offload=false", dev="tap5")
    plain.wait_for("Connected to peer")
    argv = ["ip", "addr", "add", "10.86.0.3/24", "dev", "tap5", "nodad"]
    assert network.lab.run(plain.host.namespace, argv).returncode == 0
    assert udp_datagrams(network, second, plain, 4) > udp_sent() // 2
    assert iperf3_udp(network, second, plain) > 5_000_000
    assert stopped(second)["cut"] >= _UDP_SEND // 2
