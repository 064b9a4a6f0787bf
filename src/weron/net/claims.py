"""The IP VPN's names: which addresses a member may claim, and how claims are written on the
id channel (docs/wire-protocol.md#vpn-frames), without I/O.

A name is a JSON array of CIDR-form addresses, one from each ``--ips`` network, written like
Go's ``json.Marshal`` (``["2001:db8::6a/64","192.0.2.107/24"]``). Two names clash when they
share an address.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class ClaimError(ValueError):
    """An ``--ips`` value or a claimed name that is not what the IP VPN expects."""


def parse_networks(ips: Sequence[str]) -> list[Interface]:
    """``--ips`` values (``192.0.2.1/24``) as interfaces: the address and its network."""
    interfaces: list[Interface] = []
    for text in ips:
        if not text.strip():
            continue
        if "/" not in text:
            raise ClaimError(f"not an IP network: {text!r} (expected e.g. 10.0.0.1/24)")
        try:
            interfaces.append(ipaddress.ip_interface(text.strip()))
        except ValueError:
            raise ClaimError(f"not an IP network: {text!r} (expected e.g. 10.0.0.1/24)") from None
    if not interfaces:
        raise ClaimError("missing ips: set --ips (e.g. --ips 10.0.0.1/24,fd00::1/64)")
    return interfaces


def _hosts(interface: Interface, count: int) -> list[Interface]:
    """The first ``count`` host addresses of the interface's network (for IPv4 without the
    network and broadcast addresses), without enumerating a whole /64."""
    network = interface.network
    prefix = network.prefixlen
    if network.num_addresses <= 2:  # /31, /32, /127, /128: every address is a host
        first, last = int(network.network_address), int(network.broadcast_address)
    else:
        first = int(network.network_address) + 1
        last = int(network.broadcast_address) - (1 if network.version == 4 else 0)
    stop = min(last + 1, first + count)
    return [ipaddress.ip_interface((address, prefix)) for address in range(first, stop)]


def encode(interfaces: Iterable[Interface]) -> str:
    return json.dumps([interface.with_prefixlen for interface in interfaces], separators=(",", ":"))


def candidates(networks: Sequence[Interface], max_retries: int, *, static: bool) -> list[str]:
    """Names to claim one from: exactly the given addresses with ``static``, else the i-th
    host of every network for i below ``max_retries``."""
    if static:
        return [encode(networks)]
    if max_retries < 1:
        raise ClaimError("--max-retries must be at least 1")
    columns = [_hosts(network, max_retries) for network in networks]
    return [encode(row) for row in zip(*columns, strict=False)]


def decode(name: str) -> list[Interface]:
    """The addresses of a claimed name; :class:`ClaimError` for anything else."""
    try:
        values = json.loads(name)
    except ValueError:
        raise ClaimError(f"claimed name is not JSON: {name[:80]!r}") from None
    if not isinstance(values, list) or not values or len(values) > 16:
        raise ClaimError(f"claimed name is not a list of addresses: {name[:80]!r}")
    interfaces: list[Interface] = []
    for value in values:
        if not isinstance(value, str) or "/" not in value:
            raise ClaimError(f"claimed name holds a non-address: {str(value)[:80]!r}")
        try:
            interfaces.append(ipaddress.ip_interface(value))
        except ValueError:
            raise ClaimError(f"claimed name holds a non-address: {value[:80]!r}") from None
    return interfaces


def _addresses(name: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return {interface.ip for interface in decode(name)}
    except ClaimError:
        return set()


def addresses_conflict(theirs: Iterable[str], ours: str) -> bool:
    """The id-channel conflict rule of the IP VPN: one of their names shares an address with
    ours (malformed names share nothing)."""
    mine = _addresses(ours)
    return any(mine & _addresses(name) for name in theirs)


@dataclass(frozen=True, slots=True)
class Claim:
    """A member's claimed addresses, packed for routing (4 or 16 bytes each)."""

    name: str
    interfaces: tuple[Interface, ...]

    @classmethod
    def of(cls, name: str) -> Claim:
        return cls(name, tuple(decode(name)))

    @property
    def packed(self) -> tuple[bytes, ...]:
        return tuple(interface.ip.packed for interface in self.interfaces)

    def broadcasts(self) -> tuple[bytes, ...]:
        """Directed broadcast addresses of our IPv4 networks (e.g. 10.0.0.255 for /24)."""
        return tuple(
            interface.network.broadcast_address.packed
            for interface in self.interfaces
            if interface.version == 4 and interface.network.num_addresses > 2
        )


class Overlay:
    """Our ``--ips`` networks: which destinations are on the overlay, and which addresses a
    peer may claim (issue 12: a claim is a promise about the overlay only, never a way to pose
    as another host of a network the members are also on)."""

    def __init__(self, networks: Sequence[Interface]) -> None:
        self.networks = tuple(dict.fromkeys(interface.network for interface in networks))
        # (length of a packed address, network, mask) as integers: a membership test of a
        # packet's destination without building address objects.
        self._masks = tuple(
            (network.max_prefixlen // 8, int(network.network_address), int(network.netmask))
            for network in self.networks
        )

    def __contains__(self, packed: bytes) -> bool:
        value = int.from_bytes(packed)
        size = len(packed)
        return any(
            size == length and value & mask == network for length, network, mask in self._masks
        )

    def refusal(self, interface: Interface, ours: Collection[bytes]) -> str | None:
        """Why a peer may not claim ``interface``, or None when it may."""
        address = interface.ip
        network = next((network for network in self.networks if address in network), None)
        if network is None:
            return "outside our networks"
        reserved = {network.network_address}
        if network.version == 4:
            reserved.add(network.broadcast_address)
        if network.num_addresses > 2 and address in reserved:
            return "not a host address of its network"
        if address.packed in ours:
            return "ours"
        return None

    def admit(self, claim: Claim, ours: Collection[bytes]) -> tuple[list[bytes], dict[str, str]]:
        """The packed addresses of ``claim`` a peer may have, and the refused ones with why."""
        admitted: list[bytes] = []
        refused: dict[str, str] = {}
        for interface in claim.interfaces:
            reason = self.refusal(interface, ours)
            if reason is None:
                admitted.append(interface.ip.packed)
            else:
                refused[str(interface.ip)] = reason
        return admitted, refused
