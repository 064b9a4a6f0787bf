"""NAT behaviour (RFC 5780) from the answers of the discovery tests, and what it means for
direct connections, in plain words. Pure: the tests themselves are run by ``discover.py``.

Mapping (RFC 4787 §4.1): does our public address stay the same whatever the destination?
Filtering (§5): who may send to that public address — anyone, only addresses we sent to, or
only the exact address and port we sent to?
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from weron.net.endpoints import Endpoint


class Behavior(StrEnum):
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"
    UNKNOWN = "unknown"


def mapping(first: Endpoint, other_ip: Endpoint | None, other_ip_port: Endpoint | None) -> Behavior:
    """From the mapped addresses toward the primary address, the other IP (same port) and
    the other IP and port (RFC 5780 §4.3); None for a test that got no answer."""
    if other_ip is None:
        return Behavior.UNKNOWN
    if other_ip == first:
        return Behavior.ENDPOINT_INDEPENDENT
    if other_ip_port is None:
        return Behavior.UNKNOWN
    if other_ip_port == other_ip:
        return Behavior.ADDRESS_DEPENDENT
    return Behavior.ADDRESS_AND_PORT_DEPENDENT


def filtering(from_other_ip_and_port: bool, from_other_port: bool) -> Behavior:
    """From whether answers sent from the server's other IP and port, and from its other
    port only, came through (RFC 5780 §4.4)."""
    if from_other_ip_and_port:
        return Behavior.ENDPOINT_INDEPENDENT
    if from_other_port:
        return Behavior.ADDRESS_DEPENDENT
    return Behavior.ADDRESS_AND_PORT_DEPENDENT


_MAPPING_WORDS = {
    Behavior.ENDPOINT_INDEPENDENT: "the same public address toward every destination",
    Behavior.ADDRESS_DEPENDENT: "a new public address for every destination host",
    Behavior.ADDRESS_AND_PORT_DEPENDENT: "a new public address for every destination host "
    "and port (a 'symmetric' NAT)",
    Behavior.UNKNOWN: "not known (the server has no second address, or did not answer)",
}
_FILTERING_WORDS = {
    Behavior.ENDPOINT_INDEPENDENT: "anyone may send to our public address",
    Behavior.ADDRESS_DEPENDENT: "only hosts we sent to may answer",
    Behavior.ADDRESS_AND_PORT_DEPENDENT: "only the exact addresses and ports we sent to may answer",
    Behavior.UNKNOWN: "not known",
}


@dataclass(frozen=True, slots=True)
class NatReport:
    local: Endpoint
    public: Endpoint
    mapping: Behavior
    filtering: Behavior

    @property
    def behind_nat(self) -> bool:
        return self.public != self.local

    def verdict(self) -> str:
        """What this means for gonet's direct connections."""
        if self.mapping is Behavior.UNKNOWN:
            return (
                "cannot tell how well direct connections work: use a STUN server with two "
                "addresses (RFC 5780)"
            )
        if self.mapping is Behavior.ENDPOINT_INDEPENDENT:
            if not self.behind_nat and self.filtering is Behavior.ENDPOINT_INDEPENDENT:
                return "no NAT, no filtering: every peer can connect directly"
            return (
                "direct connections work with most peers (both sides punch a hole at the same "
                "time); only peers behind a symmetric NAT with strict filtering need a relay"
            )
        return (
            "direct connections work only with peers whose NAT lets anyone (or any port of a "
            "host we sent to) in; with most peers a relay (gonet --turn) is needed"
        )

    def lines(self) -> list[str]:
        nat = "yes" if self.behind_nat else "no (the public address is our own)"
        return [
            f"local address: {self.local[0]}:{self.local[1]}",
            f"public address: {self.public[0]}:{self.public[1]}",
            f"behind a NAT: {nat}",
            f"mapping: {self.mapping} ({_MAPPING_WORDS[self.mapping]})",
            f"filtering: {self.filtering} ({_FILTERING_WORDS[self.filtering]})",
            f"what it means: {self.verdict()}",
        ]
