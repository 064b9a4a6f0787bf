"""`weron forward` between two namespaces of the lab, as issue 17 asks: a 50 MB transfer keeps
its sha256, 50 connections at once, a port not exposed is refused, the serving member killed
mid-way resets the connection and the listening member serves again once it is back; UDP
datagrams from several sources go to the other namespace's port and their answers come back
to each."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from netlab.lab import Host
from tests.netlab.conftest import WERON, Member, Network, signaler_url

ECHO_PORT = 7007
CLOSED_PORT = 7008
LISTEN_PORT = 2222
REFUSED_LISTEN_PORT = 2223
UDP_ECHO_PORT = 7009
UDP_LISTEN_PORT = 2224
ROOT = Path(__file__).resolve().parents[2]
HELPER = [sys.executable, "-m", "tests.e2e.forward"]


def start_forward(network: Network, host: Host, name: str, *args: str) -> Member:
    log_path = network.log_dir / f"forward-{name}-{time.monotonic_ns()}.log"
    argv = [
        *WERON, "forward", "--raddr", signaler_url(network.lab),
        "--community", "lab", "--password", "lab-password", "--key", "lab-key",
        "--ice", "", "--kicks", "1s", "--names", name, *args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = network.lab.start(host.namespace, argv, log=log)
    return Member(network.lab, host, process, log_path, "")


def transfer(network: Network, host: Host, port: int, size: int, count: int) -> dict[str, object]:
    argv = [*HELPER, "transfer", str(port), str(size), str(count)]
    result = network.lab.run(host.namespace, ["env", "-C", str(ROOT), *argv], timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome: dict[str, object] = json.loads(result.stdout)
    return outcome


def wait_serving(network: Network, host: Host, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while transfer(network, host, LISTEN_PORT, 16, 1)["same"] != 1:
        assert time.monotonic() < deadline, "nothing reaches the echo through weron forward"
        time.sleep(0.5)


def test_forward_between_namespaces(network: Network) -> None:
    lab = network.lab
    laptop, homelab = lab.add_host(), lab.add_host()
    with (network.log_dir / "echo.log").open("wb") as log:
        echo = lab.start(
            homelab.namespace,
            ["env", "-C", str(ROOT), *HELPER, "echo", str(ECHO_PORT)],
            log=log,
        )
    server = start_forward(network, homelab, "homelab", "--expose", str(ECHO_PORT))
    client = start_forward(
        network, laptop, "laptop",
        "--listen", f"127.0.0.1:{LISTEN_PORT}", "--to", f"homelab:{ECHO_PORT}",
        "--listen", f"127.0.0.1:{REFUSED_LISTEN_PORT}", "--to", f"homelab:{CLOSED_PORT}",
    )  # fmt: skip
    client.wait_for("Connected to peer", timeout=60)
    wait_serving(network, laptop)

    assert transfer(network, laptop, LISTEN_PORT, 50_000_000, 1) == {"same": 1, "others": []}
    assert transfer(network, laptop, LISTEN_PORT, 1_000_000, 50) == {"same": 50, "others": []}

    refused = transfer(network, laptop, REFUSED_LISTEN_PORT, 100, 1)
    assert refused == {"same": 0, "others": ["ConnectionResetError"]}
    assert client.wait_for("Peer refused the connection")["code"] == "not_exposed"
    assert server.wait_for("Refusing a connection")["port"] == CLOSED_PORT

    # The serving member killed mid-way: the transfer ends with a reset, not a clean end.
    running = lab.start(
        laptop.namespace,
        ["env", "-C", str(ROOT), *HELPER, "transfer", str(LISTEN_PORT), "300000000", "1"],
        log=subprocess.PIPE,
    )
    time.sleep(3)
    server.process.kill()
    server.process.wait()
    output, _ = running.communicate(timeout=180)
    assert json.loads(output) == {"same": 0, "others": ["ConnectionResetError"]}
    assert client.process.poll() is None

    start_forward(network, homelab, "homelab", "--expose", str(ECHO_PORT))
    wait_serving(network, laptop)
    assert transfer(network, laptop, LISTEN_PORT, 1_000_000, 1) == {"same": 1, "others": []}
    lab.stop(echo)
    assert client.stop() == 0
    assert "Traceback" not in client.output()


def test_udp_forwarded_between_namespaces(network: Network) -> None:
    lab = network.lab
    laptop, homelab = lab.add_host(), lab.add_host()
    with (network.log_dir / "udp-echo.log").open("wb") as log:
        echo = lab.start(
            homelab.namespace,
            ["env", "-C", str(ROOT), *HELPER, "udp-echo", str(UDP_ECHO_PORT)],
            log=log,
        )
    server = start_forward(network, homelab, "homelab", "--expose", f"{UDP_ECHO_PORT}/udp")
    client = start_forward(
        network, laptop, "laptop",
        "--listen", f"127.0.0.1:{UDP_LISTEN_PORT}/udp", "--to", f"homelab:{UDP_ECHO_PORT}",
    )  # fmt: skip
    client.wait_for("Connected to peer", timeout=60)
    argv = [*HELPER, "udp-pings", str(UDP_LISTEN_PORT), "5"]
    result = lab.run(laptop.namespace, ["env", "-C", str(ROOT), *argv], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == {"answered": 5, "wrong": 0}
    lab.stop(echo)
    for member in (client, server):
        assert member.stop() == 0
        assert "Traceback" not in member.output()
