"""`weron vpn ip` between namespaces that reach each other only through the VPN."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from netlab.lab import Host, Lab
from tests.netlab.conftest import WERON, Member, Network, start_hostile

IPS = "10.77.0.1/24,fd00:77::1/64"


def connected(*members: Member, peers: int) -> None:
    for member in members:
        member.wait_for("Connected to signaler")
        member.wait_for("Connected to peer", count=peers)
    for member in members:
        member.wait_for_claimed_addresses()


def test_two_members_ping_both_ways_over_ipv4_and_ipv6_and_carry_iperf3(
    network: Network,
) -> None:
    lab, start = network.lab, network.start
    first = start("ip", "--ips", IPS, "--kicks", "1s")
    second = start("ip", "--ips", IPS, "--kicks", "1s")
    connected(first, second, peers=1)
    claim = json.loads(first.wait_for("Connected to signaler")["id"])
    assert sorted(address.split("/")[0] for address in claim) == sorted(
        first.addresses(4) + first.addresses(6)
    )
    for one, other in ((first, second), (second, first)):
        for version in (4, 6):
            (address,) = other.addresses(version)
            assert one.ping(address), f"{one.host.namespace} cannot reach {address}"
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3 (Debian package iperf3)")
    (server_address,) = second.addresses(4)
    server = lab.start(second.host.namespace, ["iperf3", "-s", "-1", "-B", server_address])
    time.sleep(0.5)
    result = lab.run(first.host.namespace, ["iperf3", "-c", server_address, "-t", "2", "-J"])
    lab.stop(server)
    report = json.loads(result.stdout)
    assert report["end"]["sum_received"]["bytes"] > 1_000_000, result.stdout[-2000:]
    assert first.stop() == 0
    stopped = first.wait_for("Stopped")
    assert stopped["sent"] > 0 and stopped["received"] > 0 and stopped["spoofed"] == 0


def test_three_members_claim_distinct_addresses_from_a_tiny_pool(
    network: Network,
) -> None:
    """Three members, three candidate addresses each: every claim must differ."""
    start = network.start
    members = [
        start("ip", "--ips", "10.78.0.1/24", "--max-retries", "3", "--kicks", "1s")
        for _ in range(3)
    ]
    connected(*members, peers=2)
    claimed = [member.addresses(4)[0] for member in members]
    assert sorted(claimed) == ["10.78.0.1", "10.78.0.2", "10.78.0.3"]
    for member in members:
        for address in claimed:
            if address not in member.addresses(4):
                assert member.ping(address, count=1)


def test_a_static_claim_of_a_held_address_is_refused(network: Network) -> None:
    start = network.start
    holder = start("ip", "--ips", "10.79.0.5/24", "--static", "--kicks", "1s")
    holder.wait_for("Connected to signaler")
    late = start("ip", "--ips", "10.79.0.5/24", "--static", "--kicks", "1s")
    late.process.wait(timeout=60)
    assert late.process.returncode == 1
    assert "10.79.0.5/24 are already claimed by another member" in late.output()
    assert "Traceback" not in late.output()
    assert holder.process.poll() is None


def test_a_five_second_link_cut_heals_by_itself(network: Network) -> None:
    lab, start = network.lab, network.start
    first = start("ip", "--ips", IPS, "--kicks", "1s")
    second = start("ip", "--ips", IPS, "--kicks", "1s")
    connected(first, second, peers=1)
    (address,) = second.addresses(4)
    assert first.ping(address)
    lab.set_link(first.host, up=False)
    time.sleep(5)
    lab.set_link(first.host, up=True)
    time.sleep(6)  # long enough for both sides to notice what the cut broke (--timeout 3s)
    deadline = time.monotonic() + 60
    while not first.ping(address, count=1):
        assert time.monotonic() < deadline, f"not healed:\n{first.output()[-3000:]}"
    assert first.ping(address, count=3)
    assert first.addresses(4) == [first.addresses(4)[0]]  # kept one address throughout
    assert first.process.poll() is None and second.process.poll() is None


def test_a_suspended_member_whose_address_was_taken_meanwhile_claims_another(
    network: Network,
) -> None:
    """A laptop's lid is closed (SIGSTOP) long enough for the others to give up on it, and a
    newcomer settles on its address. Back, the sleeper used to keep the address beside the
    newcomer for good: the others routed it to the newcomer, so it reached nobody. Now it
    claims another and everyone reaches everyone."""
    start = network.start
    sleeper = start("ip", "--ips", "10.79.0.1/29", "--max-retries", "2", "--kicks", "1s")
    sleeper.wait_for_claimed_addresses()
    (taken,) = sleeper.addresses(4)  # 10.79.0.1 or .2
    other = start("ip", "--ips", "10.79.0.6/29", "--static", "--kicks", "1s")
    connected(sleeper, other, peers=1)
    os.kill(sleeper.process.pid, signal.SIGSTOP)
    try:
        newcomer = start("ip", "--ips", f"{taken}/29", "--static", "--kicks", "1s")
        newcomer.wait_for_claimed_addresses()
        # Past the newcomer's claim's contest window (at least 15 s + --kicks).
        time.sleep(15 + 1 + 1)
    finally:
        os.kill(sleeper.process.pid, signal.SIGCONT)
    sleeper.wait_for("Connected to signaler", count=2)
    deadline = time.monotonic() + 30
    while sleeper.addresses(4) in ([taken], []):
        assert time.monotonic() < deadline, f"still {taken}:\n{sleeper.output()[-3000:]}"
        time.sleep(0.2)
    (moved,) = sleeper.addresses(4)
    assert newcomer.addresses(4) == [taken] and other.addresses(4) == ["10.79.0.6"]
    for source, target in [(sleeper, "10.79.0.6"), (sleeper, taken), (other, moved)]:
        deadline = time.monotonic() + 30
        while not source.ping(target, count=1):
            assert time.monotonic() < deadline, f"{target} unreachable:\n{source.output()[-3000:]}"
    assert "Traceback" not in sleeper.output()


def test_packets_from_an_unclaimed_source_are_dropped(network: Network) -> None:
    lab, start = network.lab, network.start
    first = start("ip", "--ips", "10.80.0.1/24", "--kicks", "1s")
    second = start("ip", "--ips", "10.80.0.1/24", "--kicks", "1s")
    connected(first, second, peers=1)
    (target,) = first.addresses(4)
    assert second.ping(target, count=1)
    # An address the second member did not claim: its packets must not reach the first.
    lab.run(second.host.namespace, ["ip", "addr", "add", "10.80.0.250/32", "dev", second.dev])
    assert not second.ping(target, count=2, source="10.80.0.250")
    first.wait_for("Dropping packets with a source not routed to the peer")
    first.stop()
    assert first.wait_for("Stopped")["spoofed"] >= 2


def test_without_cap_net_admin_the_error_says_so(lab: Lab) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    host = lab.add_host()
    result = subprocess.run(
        [
            "ip", "netns", "exec", host.namespace,
            "setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin",
            *WERON, "vpn", "ip", "--community", "c", "--password", "p", "--key", "k",
            "--ips", "10.81.0.1/24", "--raddr", "ws://127.0.0.1:9/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "needs root or CAP_NET_ADMIN" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_signaler_outage_loses_no_ping(network: Network) -> None:
    """The signaler is killed and comes back 10 s later while the members ping 10 times a
    second: the peer connections never needed it, so not one ping is lost."""
    lab, start = network.lab, network.start
    first = start("ip", "--ips", IPS, "--kicks", "1s")
    second = start("ip", "--ips", IPS, "--kicks", "1s")
    connected(first, second, peers=1)
    before = first.addresses(4) + second.addresses(4)
    (address,) = second.addresses(4)
    assert first.ping(address, count=1)
    pings = lab.run_in_background(
        first.host.namespace, ["ping", "-n", "-i", "0.1", "-c", "150", "-W", "1", address]
    )
    time.sleep(1)
    network.stop_signaler(kill=True)
    time.sleep(10)
    network.start_signaler()
    first.wait_for("Connected to signaler", count=2, timeout=30)
    second.wait_for("Connected to signaler", count=2, timeout=30)
    output, _ = pings.communicate(timeout=60)
    summary = next(line for line in output.decode().splitlines() if "transmitted" in line)
    assert summary.startswith("150 packets transmitted, 150 received"), summary
    assert first.addresses(4) + second.addresses(4) == before  # both kept their addresses
    assert not any(record.get("message") == "Disconnected from peer" for record in first.records())


def test_a_member_restart_heals_by_itself(network: Network) -> None:
    start = network.start
    first = start("ip", "--ips", IPS, "--kicks", "1s")
    second = start("ip", "--ips", IPS, "--kicks", "1s")
    connected(first, second, peers=1)
    # The second member restarts (a new process, same host): the first reaches it again.
    assert second.stop() == 0
    third = start("ip", "--ips", IPS, "--kicks", "1s", host=second.host)
    third.wait_for_claimed_addresses()
    (address,) = third.addresses(4)
    deadline = time.monotonic() + 60
    while not first.ping(address, count=1):
        assert time.monotonic() < deadline, f"not reachable:\n{first.output()[-3000:]}"


def test_a_restarted_member_gets_its_address_back(network: Network) -> None:
    """The address is remembered in the host's state file and asked for first, while the
    other members (one restarted just before) hold theirs."""
    start = network.start
    members = [start("ip", "--ips", IPS, "--kicks", "1s") for _ in range(2)]
    connected(*members, peers=1)
    before = [member.addresses(4) + member.addresses(6) for member in members]
    restarted = []
    for member in members:
        assert member.stop() == 0
        restarted.append(start("ip", "--ips", IPS, "--kicks", "1s", host=member.host))
    connected(*restarted, peers=1)
    assert [member.addresses(4) + member.addresses(6) for member in restarted] == before


def test_ctrl_c_during_the_claim_ends_quietly(network: Network) -> None:
    """Ctrl-C at points through the claim, with a peer connected or being connected: status
    130, no traceback (once 'RuntimeError: Event loop is closed')."""
    start = network.start
    holder = start("ip", "--ips", IPS, "--kicks", "1s")
    holder.wait_for("Connected to signaler")
    for delay in (0.0, 0.3, 1.0, 2.0, 3.5):
        member = start("ip", "--ips", IPS, "--kicks", "5s")
        deadline = time.monotonic() + 30
        while not any(r.get("message") == "Negotiating a name" for r in member.records()):
            assert time.monotonic() < deadline and member.process.poll() is None, member.output()
            time.sleep(0.05)
        time.sleep(delay)
        member.process.send_signal(signal.SIGINT)
        assert member.process.wait(timeout=30) == 130, member.output()[-3000:]
        assert "Traceback" not in member.output() and "Error" not in member.output()


def _block_udp(lab: Lab, host: Host, blocked: bool) -> None:
    """No UDP in or out of ``host`` (the signaler's TCP still works): ICE cannot connect."""
    if blocked:
        script = (
            "table inet weron_test {\n"
            "  chain out { type filter hook output priority 0; meta l4proto udp drop; }\n"
            "  chain in { type filter hook input priority 0; meta l4proto udp drop; }\n"
            "}\n"
        )
        result = lab.run(host.namespace, ["nft", "-f", "-"], input=script)
    else:
        result = lab.run(host.namespace, ["nft", "delete", "table", "inet", "weron_test"])
    assert result.returncode == 0, result.stderr


def test_an_ice_failure_is_a_warning_and_is_retried(network: Network) -> None:
    if shutil.which("nft") is None:
        pytest.skip("needs nft (Debian package nftables)")
    lab, start = network.lab, network.start
    hosts = [lab.add_host(), lab.add_host()]
    for host in hosts:
        _block_udp(lab, host, blocked=True)
    first = start("ip", "--ips", IPS, "--kicks", "1s", host=hosts[0])
    first.wait_for("Connected to signaler")
    second = start("ip", "--ips", IPS, "--kicks", "1s", host=hosts[1])
    second.wait_for("Connecting to signaler")
    negotiating = time.monotonic()
    warning = first.wait_for("Could not connect to peer", timeout=3 + 2 + 1)
    assert time.monotonic() - negotiating <= 3 + 2 + 1  # --timeout 3s, a second to join
    assert "--ice stun:" in warning["hint"]
    assert warning["local_candidates"] == ["host"], warning
    for host in hosts:
        _block_udp(lab, host, blocked=False)
    second.wait_for_claimed_addresses()  # its address, claimed alone meanwhile
    (address,) = second.addresses(4)
    deadline = time.monotonic() + 30  # the retry comes within the backoff (3 s, then 6 s)
    while not first.ping(address, count=1):
        assert time.monotonic() < deadline, f"not retried:\n{first.output()[-3000:]}"
    assert len([r for r in first.records() if r.get("message") == "Could not connect to peer"]) <= 1


def test_a_member_claiming_another_members_address_gets_none_of_its_traffic(
    network: Network,
) -> None:
    """Issue 12: a hostile member sends `claimed` with the second member's exact name."""
    start = network.start
    first = start("ip", "--ips", "10.82.0.1/24", "--kicks", "1s")
    second = start("ip", "--ips", "10.82.0.1/24", "--kicks", "1s")
    connected(first, second, peers=1)
    (target,) = second.addresses(4)
    hostile = start_hostile(network, "--claim", second.wait_for("Connected to signaler")["id"])
    hostile.wait_for("channel")
    first.wait_for("Not routing to a peer what another member holds, while that member stays")
    second.wait_for("Ignoring peer: it may claim none of its addresses")  # its own addresses
    pings = network.lab.run(
        first.host.namespace, ["ping", "-c", "20", "-i", "0.05", "-W", "2", target]
    )
    assert "20 packets transmitted, 20 received" in pings.stdout, pings.stdout
    assert [p for p in hostile.events("packet") if p["destination"] == target] == []
    hostile.stop()
    time.sleep(1)
    assert first.ping(target, count=3)
    assert second.stop() == 0
    assert second.wait_for("Stopped")["received"] >= 23


def test_claims_outside_the_networks_and_packets_to_the_underlay_are_refused(
    network: Network,
) -> None:
    """Issue 12: a hostile member claims another host's LAN address next to an overlay one,
    and sends pings to the first member's LAN address and from the refused address."""
    start = network.start
    first = start("ip", "--ips", "10.83.0.1/24", "--kicks", "1s")
    second = start("ip", "--ips", "10.83.0.1/24", "--kicks", "1s")
    connected(first, second, peers=1)
    (overlay,) = first.addresses(4)
    underlay, other_host = first.host.address, second.host.address
    hostile = start_hostile(
        network,
        *("--claim", f'["10.83.0.200/24","{other_host}/24"]'),
        *("--probe", f"10.83.0.200,{underlay}"),  # to the first member's LAN address
        *("--probe", f"{other_host},{overlay}"),  # from the refused address
        *("--probe", f"10.83.0.200,{overlay}"),  # an honest ping: the channel works
    )
    refusal = first.wait_for("Refusing claimed addresses")
    assert refusal["refused"] == {other_host: "outside our networks"}
    first.wait_for("Dropping packets from a peer to a destination that is not ours")
    first.wait_for("Dropping packets with a source not routed to the peer")
    deadline = time.monotonic() + 20
    while not [p for p in hostile.events("packet") if p["source"] == overlay]:
        assert time.monotonic() < deadline, "the honest ping got no answer"
        time.sleep(0.2)
    time.sleep(2)  # more probes
    replies = {p["source"] for p in hostile.events("packet") if p["icmp"] == 0}
    assert replies == {overlay}  # never from the LAN address
    assert first.stop() == 0
    stopped = first.wait_for("Stopped")
    assert stopped["misdirected"] >= 2 and stopped["spoofed"] >= 2, stopped
    assert len([r for r in first.records() if r["message"] == "Refusing claimed addresses"]) == 1


@pytest.mark.solo  # times itself, or loads both cores: run alone
def test_ten_members_started_together_reach_a_full_mesh(network: Network) -> None:
    """Ten hosts at once: every member gets its own address and sees the nine others."""
    start = network.start
    started = time.monotonic()
    members = [start("ip", "--ips", "10.82.0.1/24", "--kicks", "1s") for _ in range(10)]
    for member in members:
        member.wait_for("Connected to signaler", timeout=120)
    deadline = time.monotonic() + 120
    for member in members:
        while len(_peers_seen(member)) < 9:
            if time.monotonic() > deadline:
                pytest.fail(_mesh_report(members, member))
            time.sleep(0.2)
    print(f"vpn ip: full mesh of 10 members in {time.monotonic() - started:.1f} s")
    claimed = [member.addresses(4)[0] for member in members]
    assert len(set(claimed)) == 10
    assert members[0].ping(claimed[-1], count=1)


def _mesh_report(members: list[Member], incomplete: Member) -> str:
    """Who holds which address and whom each saw, then the log of one that missed a peer."""
    seen = [
        f"member {index} holds {member.addresses(4)}, saw {sorted(_peers_seen(member))}"
        for index, member in enumerate(members)
    ]
    return "\n".join([*seen, incomplete.output()[-4000:]])


def _peers_seen(member: Member) -> set[str]:
    return {
        str(record.get("id"))
        for record in member.records()
        if record.get("message") == "Connected to peer"
    }
