"""A NAT lab (docs/netlab.md#the-labs): the lab's hub namespace is the "internet"
(198.51.100.0/24, with a second address for the STUN/TURN server), and each private host sits
behind a home router of its own: an nftables masquerade NAT that drops unsolicited inbound
packets, as home routers do.

``EIM`` routers (``masquerade``) keep one public port per socket whatever the destination
(endpoint-independent mapping, address-and-port-dependent filtering); ``SYMMETRIC`` ones
(``masquerade fully-random``) pick a new public port for every destination, which no hole
punching gets through.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from netlab.coturn import TURN_PASSWORD, TURN_USER, coturn_argv
from netlab.lab import LAN_PREFIX, Host, Lab, _ip, lab_unavailable

EIM: Final = "masquerade"
SYMMETRIC: Final = "masquerade fully-random"
STUN_PORT: Final = 3478
SECOND_ADDRESS: Final = f"{LAN_PREFIX}.250"
WAN: Final = "eth0"
SINK_PREFIX: Final = "203.0.113"  # where the internet's default route leads: nowhere
IPV6_PREFIX: Final = "2001:db8"  # the internet's IPv6: 2001:db8::N routers, 2001:db8:N::/64 homes


def nat_lab_unavailable() -> str | None:
    reason = lab_unavailable()
    if reason is not None:
        return reason
    for tool, package in (
        ("nft", "nftables"),
        ("conntrack", "conntrack"),
        ("turnserver", "coturn"),
    ):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian package {package})"
    return None


def ruleset(masquerade: str) -> str:
    """A home router: NAT out of the WAN link, nothing new gets in from it."""
    return f"""
table ip natlab {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{WAN}" {masquerade}
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{WAN}" ct state new drop
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{WAN}" ct state new drop
    }}
}}
"""


@dataclass
class Home:
    """A private host behind its router."""

    router: Host
    host: Host


@dataclass
class NatLab(Lab):
    homes: list[Home] = field(default_factory=list)

    @property
    def stun(self) -> str:
        return f"{self.hub_address}:{STUN_PORT}"

    @property
    def turn(self) -> str:
        return f"{TURN_USER}:{TURN_PASSWORD}@{self.hub_address}:{STUN_PORT}"

    def add_home(self, masquerade: str) -> Home:
        router = self.add_host()
        number = len(self.homes) + 1
        namespace = f"wlp{number}{self.tag}"
        _ip("netns", "add", namespace)
        host = Host(namespace, f"10.0.{number}.2", "eth0")
        self.hosts.append(host)
        _ip(
            "-n", router.namespace, "link", "add", "lan0",
            "type", "veth", "peer", "name", "eth0", "netns", namespace,
        )  # fmt: skip
        _ip("-n", router.namespace, "addr", "add", f"10.0.{number}.1/24", "dev", "lan0")
        _ip("-n", router.namespace, "link", "set", "lan0", "up")
        _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "route", "add", "default", "via", f"10.0.{number}.1")
        self._checked(router.namespace, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.set_nat(router, masquerade)
        home = Home(router, host)
        self.homes.append(home)
        return home

    def route_ipv6(self, *homes: Home) -> None:
        """Global IPv6 for these homes, routed without NAT nor filter (the routers' rules are
        IPv4 only), as many home networks have: home N is 2001:db8:N::/64, its host ::2."""
        numbers = {id(home): self.homes.index(home) + 1 for home in homes}
        for home in homes:
            number = numbers[id(home)]
            router, host = home.router.namespace, home.host.namespace
            self._checked(router, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            wan = f"{IPV6_PREFIX}::{number}/64"
            _ip("-n", router, "addr", "add", wan, "dev", WAN, "nodad")
            _ip(
                "-n", router, "addr", "add", f"{IPV6_PREFIX}:{number}::1/64", "dev", "lan0", "nodad"
            )
            _ip("-n", host, "addr", "add", f"{IPV6_PREFIX}:{number}::2/64", "dev", "eth0", "nodad")
            _ip("-n", host, "route", "add", "default", "via", f"{IPV6_PREFIX}:{number}::1")
            for other in homes:
                if other is not home:
                    prefix = f"{IPV6_PREFIX}:{numbers[id(other)]}::/64"
                    via = f"{IPV6_PREFIX}::{numbers[id(other)]}"
                    _ip("-n", router, "route", "add", prefix, "via", via)

    def ipv6_address(self, home: Home) -> str:
        return f"{IPV6_PREFIX}:{self.homes.index(home) + 1}::2"

    def set_nat(self, router: Host, masquerade: str) -> None:
        """(Re)load the router's ruleset, as a router restart with new settings would."""
        self.run(router.namespace, ["nft", "delete", "table", "ip", "natlab"])
        self._checked(router.namespace, ["nft", "-f", "-"], stdin=ruleset(masquerade))

    def flush_conntrack(self, router: Host) -> None:
        """Forget every NAT mapping of the router, mid-session."""
        self._checked(router.namespace, ["conntrack", "-F"])

    def start_coturn(self, log_dir: Path) -> subprocess.Popen[bytes]:
        """STUN/TURN in the hub on two addresses (RFC 5780). The hub gets a default route into
        a sink, as the internet has one: without it, coturn's sends to a peer's private
        candidate fail with ENETUNREACH, and coturn drops the whole TURN allocation."""
        _ip("-n", self.hub, "addr", "add", f"{SECOND_ADDRESS}/24", "dev", "br0")
        self._add_sink()
        argv = coturn_argv(
            [self.hub_address, SECOND_ADDRESS], STUN_PORT, self.hub_address, log_dir, 49152
        )
        with (log_dir / "coturn.out").open("wb") as log:
            return self.start(self.hub, argv, log=log)

    def _add_sink(self) -> None:
        """A default route into a veth pair whose far end drops everything (no dummy
        interfaces here: the module is missing): a gateway with a fixed MAC that nobody has."""
        _ip("-n", self.hub, "link", "add", "sink0", "type", "veth", "peer", "name", "sink1")
        _ip("-n", self.hub, "link", "set", "sink1", "up")
        _ip("-n", self.hub, "link", "set", "sink0", "up")
        _ip("-n", self.hub, "addr", "add", f"{SINK_PREFIX}.254/24", "dev", "sink0")
        _ip(
            "-n", self.hub, "neigh", "add", f"{SINK_PREFIX}.1",
            "lladdr", "02:00:00:00:00:01", "dev", "sink0", "nud", "permanent",
        )  # fmt: skip
        _ip("-n", self.hub, "route", "add", "default", "via", f"{SINK_PREFIX}.1")

    def _checked(self, namespace: str, argv: list[str], stdin: str | None = None) -> None:
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {namespace}: {result.stderr.strip()}")
