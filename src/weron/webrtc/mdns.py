"""mDNS names in ICE candidates (docs/browser.md#local-candidates): the query we send, the
answers we read, and the candidate line with the name replaced by its address. No I/O.

Browsers hide their local addresses behind random ``<uuid>.local`` names that only multicast
DNS (RFC 6762) resolves. aioice resolves them itself; libdatachannel asks the system resolver,
which knows ``.local`` only where nss-mdns (Avahi) is set up. We resolve them ourselves,
before either engine sees the candidate, so both connect to a browser on the same LAN.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

GROUP: Final = ("224.0.0.251", 5353)
TYPE_A: Final = 1
TYPE_AAAA: Final = 28
CLASS_IN: Final = 1
_CLASS_MASK: Final = 0x7FFF  # the top bit is mDNS's cache-flush (answers) or unicast (questions)
_FLAG_RESPONSE: Final = 0x8000
_HEADER: Final = struct.Struct("!HHHHHH")
_QUESTION_TAIL: Final = struct.Struct("!HH")
_RECORD_TAIL: Final = struct.Struct("!HHIH")
_POINTER: Final = 0xC0
_MAX_POINTERS: Final = 32  # a name longer than 253 bytes has fewer labels than this
_ADDRESS_FIELD: Final = 4  # candidate:<foundation> <component> <transport> <priority> <address>


class MdnsError(ValueError):
    """A packet that is not a well-formed DNS message."""


def mdns_name(host: str) -> str | None:
    """The normalized name (lower case, no trailing dot) if ``host`` is a ``.local`` name we
    may query, else ``None`` (an address, another domain, or a malformed name)."""
    name = host.rstrip(".").lower()
    if not name.endswith(".local") or len(name) > 253:
        return None
    labels = name.split(".")
    if any(not label or len(label) > 63 for label in labels):
        return None
    if not all(
        char.isascii() and (char.isalnum() or char in "-_") for char in name.replace(".", "")
    ):
        return None
    return name


def candidate_host(candidate: str) -> str | None:
    """The ``.local`` name of a candidate line (with or without ``a=``/``candidate:``), if its
    address is one."""
    fields = candidate.split()
    if len(fields) <= _ADDRESS_FIELD:
        return None
    return mdns_name(fields[_ADDRESS_FIELD])


def with_address(candidate: str, address: str) -> str:
    """The candidate line with its address replaced by ``address`` (the rest unchanged)."""
    fields = candidate.split(" ")
    fields[_ADDRESS_FIELD] = address
    return " ".join(fields)


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.split("."):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\x00")


def encode_query(name: str) -> bytes:
    """A multicast query (id 0, RFC 6762 section 18.1) for the A and AAAA records of ``name``,
    which :func:`mdns_name` accepted."""
    encoded = _encode_name(name)
    return (
        _HEADER.pack(0, 0, 2, 0, 0, 0)
        + encoded
        + _QUESTION_TAIL.pack(TYPE_A, CLASS_IN)
        + encoded
        + _QUESTION_TAIL.pack(TYPE_AAAA, CLASS_IN)
    )


def _read_name(packet: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(_MAX_POINTERS + 128):
        if offset >= len(packet):
            raise MdnsError("name runs past the end of the packet")
        length = packet[offset]
        if length & _POINTER == _POINTER:
            if offset + 1 >= len(packet):
                raise MdnsError("truncated name pointer")
            if end is None:
                end = offset + 2
            offset = ((length & ~_POINTER) << 8) | packet[offset + 1]
            continue
        if length & _POINTER:
            raise MdnsError("unknown label type")
        if length == 0:
            name = ".".join(labels).lower()
            if len(name) > 253:
                raise MdnsError("name longer than 253 bytes")
            return name, end if end is not None else offset + 1
        label = packet[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise MdnsError("label runs past the end of the packet")
        labels.append(label.decode("ascii", "replace"))
        offset += 1 + length
    raise MdnsError("too many labels or pointers (a loop?)")


def decode_answers(packet: bytes) -> list[tuple[str, str]]:
    """``(name, address)`` of every A and AAAA record of a response (answers and additional
    records); a query yields none. :class:`MdnsError` if the packet is malformed."""
    if len(packet) < _HEADER.size:
        raise MdnsError("shorter than a DNS header")
    _, flags, questions, answers, authorities, additional = _HEADER.unpack_from(packet)
    if not flags & _FLAG_RESPONSE:
        return []
    offset = _HEADER.size
    for _ in range(questions):
        _, offset = _read_name(packet, offset)
        offset += _QUESTION_TAIL.size
    found: list[tuple[str, str]] = []
    for _ in range(answers + authorities + additional):
        name, offset = _read_name(packet, offset)
        if offset + _RECORD_TAIL.size > len(packet):
            raise MdnsError("record runs past the end of the packet")
        kind, klass, _, length = _RECORD_TAIL.unpack_from(packet, offset)
        offset += _RECORD_TAIL.size
        data = packet[offset : offset + length]
        if len(data) != length:
            raise MdnsError("record data runs past the end of the packet")
        offset += length
        if klass & _CLASS_MASK != CLASS_IN:
            continue
        if kind == TYPE_A and length == 4:
            found.append((name, str(ipaddress.IPv4Address(data))))
        elif kind == TYPE_AAAA and length == 16:
            found.append((name, str(ipaddress.IPv6Address(data))))
    return found
