"""`weron status` in the NAT lab: members behind symmetric NATs meet through TURN and say
``relay``; members behind masquerade (endpoint-independent) NATs punch through and say
``direct`` (srflx); the byte counters grow with the traffic."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netlab.coturn import TURN_PASSWORD, TURN_USER
from netlab.natlab import (
    EIM,
    SECOND_ADDRESS,
    STUN_PORT,
    SYMMETRIC,
    NatLab,
)
from tests.netlab.conftest import Member, Network
from tests.netlab.test_vpn_ip import IPS, connected


def status(runtime: Path, pid: int) -> list[dict[str, Any]]:
    """The peers of the member with ``pid``, as `weron status --json` lists them."""
    result = subprocess.run(
        [sys.executable, "-m", "weron", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin"},
    )
    processes = json.loads(result.stdout)["processes"]
    peers: list[dict[str, Any]] = [
        peer for process in processes if process["pid"] == pid for peer in process["peers"]
    ]
    return peers


def wait_for_socket(runtime: Path, member: Member) -> int:
    """The member's pid (``ip netns exec`` execs weron), once its control socket is there."""
    pid: int = member.process.pid
    deadline = time.monotonic() + 60
    while not list((runtime / "weron").glob(f"{pid}.vpn-ip.*.sock")):
        assert time.monotonic() < deadline, f"no control socket:\n{member.output()[-3000:]}"
        time.sleep(0.2)
    return pid


def wait_for_peer(
    runtime: Path, pid: int, condition: Callable[[dict[str, Any]], bool], timeout: float = 90.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = status(runtime, pid)
        for peer in seen:
            if condition(peer):
                return peer
        time.sleep(1)
    raise AssertionError(f"no such peer within {timeout}s: {seen}")


@pytest.mark.parametrize(
    ("nat", "paths"),
    # Through a NAT: srflx, or prflx where a check from the peer's mapping came first.
    [(SYMMETRIC, {"relay"}), (EIM, {"srflx", "prflx"})],
    ids=["symmetric-relay", "masquerade-direct"],
)
def test_status_tells_relayed_from_direct(
    natlab: NatLab, tmp_path: Path, runtime: Path, nat: str, paths: set[str]
) -> None:
    network = Network(natlab, tmp_path)
    network.start_signaler()
    coturn = natlab.start_coturn(tmp_path)
    homes = [natlab.add_home(nat), natlab.add_home(nat)]
    turn = f"{TURN_USER}:{TURN_PASSWORD}@turn:{natlab.hub_address}:{STUN_PORT}"
    ice = ("--ice", f"stun:{natlab.stun},{turn}")
    first, second = (
        network.start("ip", "--ips", IPS, "--kicks", "1s", *ice, host=home.host) for home in homes
    )
    connected(first, second, peers=1)
    pid = wait_for_socket(runtime, first)
    peer = wait_for_peer(runtime, pid, lambda p: p["state"] == "connected" and p["path"])
    print(f"{nat}: {peer}")
    assert peer["path"] in paths, peer
    assert peer["direct"] is (paths != {"relay"})
    if paths == {"relay"}:
        ends = {peer["local_address"].rsplit(":", 1)[0], peer["remote_address"].rsplit(":", 1)[0]}
        assert ends & {natlab.hub_address, SECOND_ADDRESS}, peer  # the TURN server's
    before = peer["bytes_sent"]
    (address,) = second.addresses(4)
    assert first.ping(address, count=20)
    wait_for_peer(runtime, pid, lambda p: p["bytes_sent"] >= before + 20 * 84)
    if paths == {"relay"}:
        stops_promptly_with_its_relay_gone(natlab, coturn, first)


def stops_promptly_with_its_relay_gone(
    natlab: NatLab, coturn: subprocess.Popen[bytes], member: Member
) -> None:
    """With the TURN server gone, closing the connection cannot reach the peer (libdatachannel
    retransmits its SCTP SHUTDOWN for about 13 s): SIGTERM still ends the member in about
    ``CLOSE_GRACE``, with status 0, not aborted by the engine at exit."""
    natlab.stop(coturn)
    member.wait_for("Peer stopped answering", timeout=15)
    started = time.monotonic()
    member.process.send_signal(signal.SIGTERM)
    try:
        member.process.wait(4)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running 4 s after SIGTERM:\n{member.output()[-2000:]}"
        ) from None
    print(f"stopped in {time.monotonic() - started:.2f} s")
    output = member.output()
    assert member.process.returncode == 0, output[-2000:]
    assert any(record.get("message") == "Stopped" for record in member.records()), output
    assert "terminate called" not in output, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
