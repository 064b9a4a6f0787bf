"""`weron vpn ip` between two private hosts behind home routers (the NAT lab): a cut of one
home's uplink heals as soon as the link is back, and the overlay never carries itself."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from netlab.natlab import EIM, NatLab
from tests.netlab.conftest import Network
from tests.netlab.test_vpn_ip import IPS, connected

REPLY = re.compile(r"^\[(?P<time>[0-9.]+)\] .* icmp_seq=(?P<seq>\d+) ")
OVERLAY_PREFIXES = ("10.77.", "fd00:77:")


def outages(sequence_numbers: list[int], sent: int) -> list[tuple[int, int]]:
    """Runs of consecutive missing replies, as (first, last) sequence numbers."""
    received = set(sequence_numbers)
    runs: list[tuple[int, int]] = []
    for number in range(1, sent + 1):
        if number in received:
            continue
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


@pytest.mark.solo  # times itself, or loads both cores: run alone
def test_a_ten_second_uplink_cut_heals_within_three_seconds(natlab: NatLab, tmp_path: Path) -> None:
    network = Network(natlab, tmp_path)
    network.start_signaler()
    natlab.start_coturn(tmp_path)
    homes = [natlab.add_home(EIM), natlab.add_home(EIM)]
    ice = ("--ice", f"stun:{natlab.stun}")
    first, second = (
        network.start("ip", "--ips", IPS, "--kicks", "1s", *ice, host=home.host) for home in homes
    )
    connected(first, second, peers=1)
    (address,) = second.addresses(4)
    assert first.ping(address, count=2)
    sent = 250  # 25 s at 10 a second
    pings = natlab.run_in_background(
        first.host.namespace, ["ping", "-n", "-D", "-i", "0.1", "-c", str(sent), "-W", "1", address]
    )
    time.sleep(5)
    natlab.set_link(homes[0].router, up=False)
    time.sleep(10)
    natlab.set_link(homes[0].router, up=True)
    link_up = time.time()
    output, _ = pings.communicate(timeout=60)
    replies = [match for line in output.decode().splitlines() if (match := REPLY.match(line))]
    after = [float(match["time"]) for match in replies if float(match["time"]) > link_up]
    assert after, f"no reply after the link came back:\n{first.output()[-3000:]}"
    healed_in = after[0] - link_up
    runs = outages([int(match["seq"]) for match in replies], sent)
    print(f"healed {healed_in:.2f} s after link-up; outages (first, last seq): {runs}")
    assert healed_in <= 3.0, runs
    assert len(runs) == 1, runs
    for member in (first, second):
        sent_candidates = [
            str(record.get("candidate"))
            for record in member.records()
            if record.get("message") == "Sending candidate"
        ]
        assert sent_candidates
        leaked = [line for line in sent_candidates if any(p in line for p in OVERLAY_PREFIXES)]
        assert not leaked, leaked
