"""A network lab of namespaces (docs/netlab.md#the-labs): a hub namespace with a bridge —
the "LAN" on 198.51.100.0/24 where the signaler listens — and hosts joined to it by veth pairs.

Every name carries a tag unique to this run, every process started here is stopped by its pid,
and :meth:`Lab.close` removes the namespaces even when a test failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

LAN_PREFIX = "198.51.100"


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, TUN/TAP devices)"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun"
    for tool in ("ip", "ping"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian packages iproute2, iputils-ping)"
    return None


@dataclass
class Host:
    namespace: str
    address: str  # on the LAN
    link: str  # its end of the veth pair, inside the namespace


@dataclass
class Lab:
    tag: str = field(
        default_factory=lambda: f"{os.getpid() % 100000:05d}{time.monotonic_ns() % 997:03d}"
    )
    hosts: list[Host] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    hub: str = ""

    def __post_init__(self) -> None:
        self.hub = f"wlhub{self.tag}"
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{LAN_PREFIX}.1/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        _ip("-n", self.hub, "link", "set", "lo", "up")

    @property
    def hub_address(self) -> str:
        return f"{LAN_PREFIX}.1"

    def add_host(self) -> Host:
        number = len(self.hosts) + 2
        namespace = f"wlh{number}{self.tag}"
        outer = f"wv{number}{self.tag}"[:15]
        _ip("netns", "add", namespace)
        _ip(
            "link",
            "add",
            outer,
            "netns",
            self.hub,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            namespace,
        )
        _ip("-n", self.hub, "link", "set", outer, "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{LAN_PREFIX}.{number}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        host = Host(namespace, f"{LAN_PREFIX}.{number}", "eth0")
        self.hosts.append(host)
        return host

    def start(
        self,
        namespace: str,
        argv: list[str],
        log: IO[bytes] | int | None = subprocess.DEVNULL,
        **kwargs: object,
    ) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            ["ip", "netns", "exec", namespace, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            **kwargs,
        )
        self.processes.append(process)
        return process

    def run(
        self, namespace: str, argv: list[str], timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", namespace, *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_in_background(self, namespace: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """A command whose output the test reads when it ends (``communicate``)."""
        return self.start(namespace, argv, log=subprocess.PIPE)

    def listening(self, namespace: str, port: int) -> bool:
        output = self.run(namespace, ["ss", "-Hltn", f"sport = :{port}"]).stdout
        return bool(output.strip())

    def set_link(self, host: Host, up: bool) -> None:
        _ip("-n", host.namespace, "link", "set", host.link, "up" if up else "down")

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                self.stop(process, timeout=5.0)
        for namespace in [host.namespace for host in self.hosts] + [self.hub]:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
