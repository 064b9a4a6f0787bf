"""A WireGuard lab in network namespaces: stock wireguard-go instances on TUN devices, joined
by a veth pair on 198.51.100.0/24, and sockets opened inside any of the namespaces.

Used by the interop tests and by bench/wireguard.py. Everything has a unique name, and
everything is torn down (processes by pid, namespaces by name, control sockets) on exit, also
after a failure. Nothing is routed in the root namespace.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from weron.wireguard.crypto import PrivateKey
from weron.wireguard.ip import overlay_address

SUBNET_PREFIX: Final = "198.51.100."
CONTROL_DIR: Final = Path("/var/run/wireguard")
_TOOLS: Final = ("ip", "wg", "wireguard-go")


def missing_requirements() -> str | None:
    """Why the lab cannot run here (None when it can)."""
    if sys.version_info < (3, 12):
        return "needs Python 3.12+ (os.setns)"
    if os.geteuid() != 0:
        return "needs root (network namespaces, TUN devices)"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (Debian: wireguard-go wireguard-tools iproute2)"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun"
    return None


def _run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def key_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@contextlib.contextmanager
def in_namespace(name: str) -> Iterator[None]:
    """Run the body in network namespace ``name`` (this thread only); sockets made here stay
    in that namespace after we switch back."""
    if sys.version_info < (3, 12):  # missing_requirements() says so
        raise RuntimeError("os.setns needs Python 3.12+")
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        os.setns(target, os.CLONE_NEWNET)
        try:
            yield
        finally:
            os.setns(own, os.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)


def start_wireguard_go(
    namespace: str, interface: str, key: PrivateKey, port: int
) -> subprocess.Popen[bytes]:
    """wireguard-go on a new TUN ``interface`` in ``namespace``, with ``key`` and UDP ``port``
    (the link left down, without addresses). Its control socket is in CONTROL_DIR, shared by
    every namespace: ``interface`` must be unique on the machine. Stop it by its pid."""
    env = {**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
    process = subprocess.Popen(
        ["ip", "netns", "exec", namespace, "wireguard-go", "-f", interface],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        control = CONTROL_DIR / f"{interface}.sock"
        deadline = time.monotonic() + 15
        while not control.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wireguard-go did not start (exit {process.poll()})")
            time.sleep(0.05)
        key_file = Path(f"/run/wglab-{interface}.key")
        key_file.touch(mode=0o600)
        try:
            key_file.write_text(key_text(key.raw()))
            wg = ["ip", "netns", "exec", namespace, "wg", "set", interface]
            _run(*wg, "private-key", str(key_file), "listen-port", str(port))
        finally:
            key_file.unlink(missing_ok=True)
    except BaseException:
        process.terminate()
        process.wait()
        raise
    return process


@dataclass
class Host:
    """One namespace on the lab's veth link."""

    namespace: str
    address: str  # on the veth link


@dataclass
class WireGuardGo:
    """A wireguard-go instance: its interface, key, UDP port and overlay address."""

    host: Host
    interface: str
    key: PrivateKey
    port: int
    process: subprocess.Popen[bytes]

    @property
    def overlay(self) -> str:
        return str(overlay_address(self.key.public))

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host.address, self.port)


class WireGuardLab:
    """Two hosts (``left``, ``right``) on one veth link; wireguard-go instances on either."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self.left = Host(f"wgl-{self.token}-l", SUBNET_PREFIX + "1")
        self.right = Host(f"wgl-{self.token}-r", SUBNET_PREFIX + "2")
        self.instances: list[WireGuardGo] = []
        self._namespaces: list[str] = []
        self._files: list[Path] = []

    def __enter__(self) -> WireGuardLab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _build(self) -> None:
        for host in (self.left, self.right):
            _run("ip", "netns", "add", host.namespace)
            self._namespaces.append(host.namespace)
            _run("ip", "-n", host.namespace, "link", "set", "lo", "up")
        left_if, right_if = f"wgv{self.token}l", f"wgv{self.token}r"
        _run(
            "ip", "-n", self.left.namespace, "link", "add", left_if,
            "type", "veth", "peer", "name", right_if, "netns", self.right.namespace,
        )  # fmt: skip
        for host, interface in ((self.left, left_if), (self.right, right_if)):
            _run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", interface)
            _run("ip", "-n", host.namespace, "link", "set", interface, "up")

    def start_wireguard_go(self, host: Host, port: int = 51820) -> WireGuardGo:
        """wireguard-go on a new TUN in ``host``, with a new key and its overlay address."""
        interface = f"wg{self.token}{len(self.instances)}"
        key = PrivateKey.generate()
        self._files.append(CONTROL_DIR / f"{interface}.sock")
        process = start_wireguard_go(host.namespace, interface, key, port)
        instance = WireGuardGo(host, interface, key, port, process)
        self.instances.append(instance)
        ns = host.namespace
        _run(
            "ip",
            "-n",
            ns,
            "-6",
            "addr",
            "add",
            f"{instance.overlay}/128",
            "dev",
            interface,
            "nodad",
        )
        _run("ip", "-n", ns, "link", "set", interface, "mtu", "1420", "up")
        _run("ip", "-n", ns, "-6", "route", "add", "fd00::/8", "dev", interface)
        return instance

    def wg(self, instance: WireGuardGo, *args: str) -> str:
        return _run("ip", "netns", "exec", instance.host.namespace, "wg", *args)

    def add_peer(
        self,
        instance: WireGuardGo,
        public_key: bytes,
        endpoint: tuple[str, int],
        psk: bytes | None = None,
    ) -> None:
        """Tell ``instance`` about a peer whose overlay address is derived from its key."""
        args = [
            "set", instance.interface, "peer", key_text(public_key),
            "allowed-ips", f"{overlay_address(public_key)}/128",
            "endpoint", f"{endpoint[0]}:{endpoint[1]}",
        ]  # fmt: skip
        if psk is None:
            self.wg(instance, *args)
            return
        psk_file = Path(f"/run/wglab-{self.token}-{instance.interface}.psk")
        self._files.append(psk_file)
        psk_file.touch(mode=0o600)
        psk_file.write_text(key_text(psk))
        try:
            self.wg(instance, *args, "preshared-key", str(psk_file))
        finally:
            psk_file.unlink()

    def latest_handshake(self, instance: WireGuardGo, public_key: bytes) -> int:
        """Unix time of the instance's latest handshake with that peer (0: none)."""
        for line in self.wg(instance, "show", instance.interface, "latest-handshakes").splitlines():
            peer, _, when = line.partition("\t")
            if peer == key_text(public_key):
                return int(when)
        return 0

    def udp_socket(self, host: Host, address: str, port: int = 0) -> socket.socket:
        """A UDP socket bound in ``host``'s namespace."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with in_namespace(host.namespace):
            sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((address, port))
        return sock

    def close(self) -> None:
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGTERM)
                try:
                    instance.process.wait(10)
                except subprocess.TimeoutExpired:
                    instance.process.kill()
                    instance.process.wait()
        for namespace in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self._namespaces.clear()
        for path in self._files:
            path.unlink(missing_ok=True)
