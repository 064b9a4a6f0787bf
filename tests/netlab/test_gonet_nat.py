"""gonet through real NATs: two private hosts, each behind its own nftables home router, a
signaler and coturn (STUN/TURN on two addresses) on the "internet" between them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netlab.natlab import EIM, SYMMETRIC, NatLab, nat_lab_unavailable
from tests.e2e.chat import GonetProcess
from tests.netlab.conftest import signaler_url, start_signaler

ROOM = "home/room/secret"
Start = Callable[..., GonetProcess]


@pytest.fixture
def natlab(tmp_path: Path) -> Iterator[NatLab]:
    reason = nat_lab_unavailable()
    if reason is not None:
        pytest.skip(f"NAT lab: {reason}")
    lab = NatLab()
    started: list[GonetProcess] = []
    try:
        yield lab
    finally:
        for member in started:
            if member.process.poll() is None:
                member.kill()
        lab.close()


@pytest.fixture
def members(natlab: NatLab, tmp_path: Path) -> Iterator[Start]:
    """A signaler and coturn on the internet; `gonet` members in the private hosts."""
    start_signaler(natlab, tmp_path)
    url = signaler_url(natlab)
    natlab.start_coturn(tmp_path)
    started: list[GonetProcess] = []

    def start(namespace: str, name: str, *args: str) -> GonetProcess:
        member = GonetProcess(
            url,
            tmp_path,
            ROOM,
            "--name", name,
            "--stun", natlab.stun,
            "--turn", natlab.turn,
            "--timeout", "40s",
            *args,
            namespace=namespace,
        )  # fmt: skip
        started.append(member)
        return member

    yield start
    for member in started:
        if member.process.poll() is None:
            member.kill()


def routes(lines: list[str], other: str) -> list[str]:
    """The path lines about ``other``: ``~other direct`` or ``~other relay``."""
    return [line for line in lines if line.startswith(f"~{other} ")]


def chat_both_ways(alice: GonetProcess, bob: GonetProcess, text: str) -> None:
    alice.say(f"{text} from alice")
    bob.wait_for(f"alice: {text} from alice")
    bob.say(f"{text} from bob")
    alice.wait_for(f"bob: {text} from bob")


def test_endpoint_independent_nats_connect_directly_and_survive_lost_mappings(
    natlab: NatLab, members: Start
) -> None:
    home_a, home_b = natlab.add_home(EIM), natlab.add_home(EIM)
    alice = members(home_a.host.namespace, "alice")
    # Bob's port is outside the range its restarted router maps to (below): a random one in
    # it (1 in 28) kept its public port, and no path was lost to recover from.
    bob = members(home_b.host.namespace, "bob", "--port", "51820")
    assert alice.wait_for("~bob") == "~bob direct"
    assert bob.wait_for("~alice") == "~alice direct"
    chat_both_ways(alice, bob, "hello")

    # The router forgets every mapping: the next packets out make new ones.
    natlab.flush_conntrack(home_a.router)
    chat_both_ways(alice, bob, "after a flush")

    # The router restarts and hands out other public ports: the old path is dead (messages
    # sent now are lost, as UDP is). Both sides notice, learn their new mapping, exchange
    # candidates again and punch a new hole (on the way, the relay may carry them).
    natlab.set_nat(home_b.router, "meta l4proto { tcp, udp } masquerade to :40000-40999")
    natlab.flush_conntrack(home_b.router)
    alice.wait_until(lambda lines: len(routes(lines, "bob")) >= 2, "recovered", 60)
    bob.wait_until(lambda lines: len(routes(lines, "alice")) >= 2, "recovered", 60)
    chat_both_ways(alice, bob, "after a restart")
    alice.wait_until(lambda lines: routes(lines, "bob")[-1] == "~bob direct", "direct", 60)
    bob.wait_until(lambda lines: routes(lines, "alice")[-1] == "~alice direct", "direct", 60)
    chat_both_ways(alice, bob, "direct again")
    assert not any(line.startswith("-") for line in alice.output() + bob.output())
    assert alice.stop() == 0 and bob.stop() == 0


def test_a_conntrack_flush_mid_chat_loses_no_line(natlab: NatLab, members: Start) -> None:
    """Both routers forget their mappings while alice types: the datagrams in flight then are
    lost, the lines they carried are not (each arrives once)."""
    home_a, home_b = natlab.add_home(EIM), natlab.add_home(EIM)
    alice = members(home_a.host.namespace, "alice")
    bob = members(home_b.host.namespace, "bob")
    assert alice.wait_for("~bob") == "~bob direct"
    bob.wait_for("~alice")
    chat_both_ways(alice, bob, "hello")
    said = [f"alice: line {n}" for n in range(30)]
    for n, line in enumerate(said):
        if n == 10:
            natlab.flush_conntrack(home_b.router)
            natlab.flush_conntrack(home_a.router)
        alice.say(line.removeprefix("alice: "))
        time.sleep(0.1)
    bob.wait_until(lambda lines: set(said) <= set(lines), "every line shown", 40)
    assert sorted(line for line in bob.output() if line in said) == sorted(said)
    assert not any("not delivered" in line for line in alice.output())
    assert alice.stop() == 0 and bob.stop() == 0


def test_a_symmetric_nat_falls_back_to_turn(natlab: NatLab, members: Start) -> None:
    home_a, home_b = natlab.add_home(SYMMETRIC), natlab.add_home(EIM)
    alice = members(home_a.host.namespace, "alice")
    bob = members(home_b.host.namespace, "bob")
    bob.wait_for("+alice")
    assert alice.wait_for("~bob") == "~bob relay"
    assert bob.wait_for("~alice") == "~alice relay"
    chat_both_ways(alice, bob, "through the relay")
    assert alice.stop() == 0 and bob.stop() == 0


def test_hosts_behind_symmetric_nats_with_ipv6_between_them_meet_directly_over_ipv6(
    natlab: NatLab, members: Start
) -> None:
    """No IPv4 hole gets through two symmetric NATs (the relay would carry everything), but
    the hosts' global IPv6 addresses are candidates too, and that path is direct."""
    home_a, home_b = natlab.add_home(SYMMETRIC), natlab.add_home(SYMMETRIC)
    natlab.route_ipv6(home_a, home_b)
    alice = members(home_a.host.namespace, "alice")
    bob = members(home_b.host.namespace, "bob")
    assert alice.wait_for("~bob") == "~bob direct"
    assert bob.wait_for("~alice") == "~alice direct"
    chat_both_ways(alice, bob, "over IPv6")
    assert f"host [{natlab.ipv6_address(home_a)}]:" in alice.logs()
    assert f"host [{natlab.ipv6_address(home_b)}]:" in bob.logs()
    assert not any(line.endswith(" relay") for line in alice.output() + bob.output())
    assert alice.stop() == 0 and bob.stop() == 0


def test_gonet_nat_reports_each_kind_of_nat(natlab: NatLab, tmp_path: Path) -> None:
    natlab.start_coturn(tmp_path)
    homes = {"eim": natlab.add_home(EIM), "symmetric": natlab.add_home(SYMMETRIC)}
    command = [sys.executable, "-m", "weron.cli.gonet", "nat", "--stun", natlab.stun]
    runs = {
        kind: subprocess.Popen(
            ["ip", "netns", "exec", home.host.namespace, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for kind, home in homes.items()
    }
    reports = {kind: run.communicate(timeout=60) for kind, run in runs.items()}
    eim, symmetric = reports["eim"][0], reports["symmetric"][0]
    assert all(run.returncode == 0 for run in runs.values()), reports
    router_a = homes["eim"].router.address
    assert f"public address: {router_a}:" in eim and "behind a NAT: yes" in eim
    assert "mapping: endpoint-independent" in eim
    assert "filtering: address-and-port-dependent" in eim
    assert "direct connections work with most peers" in eim
    assert "mapping: address-and-port-dependent" in symmetric
    assert "filtering: address-and-port-dependent" in symmetric
    assert "a relay (gonet --turn) is needed" in symmetric
