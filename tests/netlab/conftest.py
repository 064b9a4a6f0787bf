"""Fixtures of the namespace lab: a fresh lab per test, a signaler on its LAN, VPN members."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netlab.lab import Host, Lab, lab_unavailable
from netlab.natlab import NatLab, nat_lab_unavailable
from tests.e2e.processes import json_records

WERON = [sys.executable, "-m", "weron"]
SIGNALER_PORT = 1337
_ROOT = Path(__file__).resolve().parents[2]  # for python -m tests.netlab.hostile
_DETAIL = ("debug", "trace")  # --verbose 6 logs these too; tests look at what users see


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = lab_unavailable()
    if reason is not None:
        pytest.skip(reason)
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@dataclass
class Member:
    """One `weron vpn` process in a host namespace."""

    lab: Lab
    host: Host
    process: Any
    log_path: Path
    dev: str

    def records(self) -> list[dict[str, Any]]:
        return json_records(self.log_path)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, message: str, timeout: float = 30.0, count: int = 1) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                record
                for record in self.records()
                if record.get("message") == message and record.get("level") not in _DETAIL
            ]
            if len(found) >= count:
                return found[count - 1]
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {message!r} within {timeout}s:\n{self.output()[-3000:]}")

    def wait_for_claimed_addresses(self, timeout: float = 15.0) -> None:
        """Until the device holds the addresses of our first claim: they are set just after
        the claim, and "Connected to peer" (a peer's claim) can come first."""
        claim = json.loads(self.wait_for("Connected to signaler")["id"])
        wanted = {address.split("/")[0] for address in claim}
        deadline = time.monotonic() + timeout
        while not wanted <= set(self.addresses(4) + self.addresses(6)):
            assert time.monotonic() < deadline, f"{self.dev} lacks some of {sorted(wanted)}"
            time.sleep(0.1)

    def addresses(self, version: int) -> list[str]:
        output = self.lab.run(
            self.host.namespace, ["ip", f"-{version}", "addr", "show", self.dev]
        ).stdout
        return re.findall(r"inet6? ([0-9a-f.:]+)/\d+ scope global", output)

    def ping(self, address: str, count: int = 3, source: str | None = None) -> bool:
        argv = ["ping", "-c", str(count), "-i", "0.2", "-W", "2", address]
        if source is not None:
            argv += ["-I", source]
        return self.lab.run(self.host.namespace, argv).returncode == 0

    def stop(self) -> int:
        return self.lab.stop(self.process)


def start_signaler(lab: Lab, log_dir: Path) -> subprocess.Popen[bytes]:
    """A signaler in the hub namespace (at :func:`signaler_url`), once it listens."""
    with (log_dir / f"signaler-{time.monotonic_ns()}.log").open("wb") as log:
        process = lab.start(
            lab.hub,
            [*WERON, "signaler", "--laddr", f"{lab.hub_address}:{SIGNALER_PORT}"],
            log=log,
        )
    deadline = time.monotonic() + 20
    while not lab.listening(lab.hub, SIGNALER_PORT):
        assert time.monotonic() < deadline, "the signaler did not start"
        time.sleep(0.1)
    return process


def signaler_url(lab: Lab) -> str:
    return f"ws://{lab.hub_address}:{SIGNALER_PORT}/"


@dataclass
class Network:
    """The lab, its signaler on the LAN, and `weron vpn ip|ethernet` members to start."""

    lab: Lab
    log_dir: Path
    signaler: subprocess.Popen[bytes] | None = None

    def start_signaler(self) -> None:
        self.signaler = start_signaler(self.lab, self.log_dir)

    def stop_signaler(self, *, kill: bool = False) -> None:
        """Stop the signaler (``kill``: SIGKILL, as a crash would)."""
        assert self.signaler is not None
        if kill:
            self.signaler.kill()
            self.signaler.wait()
        else:
            self.lab.stop(self.signaler)

    def start(self, kind: str, *args: str, host: Host | None = None, dev: str = "weron0") -> Member:
        host = host or self.lab.add_host()
        log_path = self.log_dir / f"{kind}-{host.namespace}-{time.monotonic_ns()}.log"
        argv = [
            *WERON,
            "vpn",
            kind,
            "--raddr",
            signaler_url(self.lab),
            "--community",
            "lab",
            "--password",
            "lab-password",
            "--key",
            "lab-key",
            "--ice",
            "",
            "--timeout",
            "3s",
            "--dev",
            dev,
            "--verbose",
            "6",
            # One state file per host, as on a machine (never the real /var/lib/weron/).
            *(
                ["--state-file", str(self.log_dir / f"state-{host.namespace}.json")]
                * (kind == "ip")
            ),
            *args,
        ]
        with log_path.open("wb") as member_log:
            process = self.lab.start(host.namespace, argv, log=member_log)
        return Member(self.lab, host, process, log_path, dev)


@dataclass
class Hostile:
    """A :mod:`tests.netlab.hostile` member: what it reported on stdout."""

    lab: Lab
    host: Host
    process: Any
    log_path: Path

    def events(self, event: str) -> list[dict[str, Any]]:
        return [
            record
            for record in json_records(self.log_path)
            if isinstance(record, dict) and record.get("event") == event
        ]

    def wait_for(self, event: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.events(event):
            assert self.process.poll() is None and time.monotonic() < deadline, (
                f"no {event!r}:\n{self.log_path.read_text(errors='replace')[-3000:]}"
            )
            time.sleep(0.1)

    def stop(self) -> int:
        return self.lab.stop(self.process)


def start_hostile(network: Network, *args: str) -> Hostile:
    """A hostile member on a new host, with ``args`` (``--claim NAME`` or ``--id MAC``,
    ``--probe SOURCE,DESTINATION``...)."""
    host = network.lab.add_host()
    log_path = network.log_dir / f"hostile-{host.namespace}-{time.monotonic_ns()}.log"
    argv = [
        sys.executable, "-m", "tests.netlab.hostile", "--raddr", signaler_url(network.lab),
        "--community", "lab", "--password", "lab-password", "--key", "lab-key", *args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = network.lab.start(host.namespace, argv, log=log, cwd=_ROOT)
    return Hostile(network.lab, host, process, log_path)


@pytest.fixture
def network(lab: Lab, tmp_path: Path) -> Network:
    """A signaler on the lab's LAN, ready for members."""
    network = Network(lab, tmp_path)
    network.start_signaler()
    return network


@pytest.fixture
def natlab() -> Iterator[NatLab]:
    """A NAT lab of home routers (the VPN and status tests; gonet's adds its members)."""
    reason = nat_lab_unavailable()
    if reason is not None:
        pytest.skip(f"NAT lab: {reason}")
    lab = NatLab()
    try:
        yield lab
    finally:
        lab.close()
