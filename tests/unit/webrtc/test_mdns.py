"""mDNS for browsers' hidden host candidates: names, the query, answers, the rewrite."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest

from weron.webrtc.mdns import (
    MdnsError,
    candidate_host,
    decode_answers,
    encode_query,
    mdns_name,
    with_address,
)

NAME = "1f2e3d4c-aaaa-bbbb-cccc-0123456789ab.local"
CHROMIUM_CANDIDATE = (
    f"candidate:2745112906 1 udp 2113937151 {NAME} 53514 typ host generation 0 network-cost 999"
)


def labels(name: str) -> bytes:
    """A name as DNS writes it, built here independently of the module under test."""
    return b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\x00"


def response(
    *records: tuple[bytes, int, int, bytes],
    questions: bytes = b"",
    qdcount: int = 0,
    flags: int = 0x8400,
    additional: int = 0,
) -> bytes:
    """A response whose records are (name bytes, type, class, data)."""
    body = b"".join(
        name + struct.pack("!HHIH", kind, klass, 120, len(data)) + data
        for name, kind, klass, data in records
    )
    answers = len(records) - additional
    return struct.pack("!HHHHHH", 0, flags, qdcount, answers, 0, additional) + questions + body


@pytest.mark.parametrize(
    ("host", "name"),
    [
        (NAME, NAME),
        (NAME.upper() + ".", NAME),
        ("printer.local", "printer.local"),
    ],
)
def test_mdns_names(host: str, name: str) -> None:
    assert mdns_name(host) == name


@pytest.mark.parametrize(
    "host",
    [
        "192.168.1.2",
        "fe80::1",
        "example.com",
        "local",
        ".local",
        "a..local",
        "a b.local",
        "a" * 64 + ".local",
        ("a" * 60 + ".") * 5 + "local",
        "é.local",
        "a/b.local",
    ],
)
def test_not_mdns_names(host: str) -> None:
    assert mdns_name(host) is None


def test_candidate_host_and_rewrite() -> None:
    assert candidate_host(CHROMIUM_CANDIDATE) == NAME
    assert candidate_host("a=" + CHROMIUM_CANDIDATE) == NAME
    assert candidate_host(CHROMIUM_CANDIDATE.removeprefix("candidate:")) == NAME
    assert candidate_host("candidate:1 1 udp 2130706431 192.168.1.2 5000 typ host") is None
    assert candidate_host("candidate:1 1 udp") is None
    assert with_address(CHROMIUM_CANDIDATE, "192.168.1.20") == CHROMIUM_CANDIDATE.replace(
        NAME, "192.168.1.20"
    )


def test_query_asks_for_a_and_aaaa() -> None:
    query = encode_query(NAME)
    assert query[:12] == struct.pack("!HHHHHH", 0, 0, 2, 0, 0, 0)
    question = labels(NAME)
    assert query[12:] == question + struct.pack("!HH", 1, 1) + question + struct.pack("!HH", 28, 1)
    assert decode_answers(query) == []  # our own query, looped back, answers nothing


def test_answers_with_compression_and_cache_flush() -> None:
    question = labels(NAME) + struct.pack("!HH", 1, 1)
    pointer = b"\xc0\x0c"  # the name in the question
    packet = response(
        (pointer, 1, 0x8001, bytes([192, 168, 1, 20])),
        (pointer, 28, 0x8001, bytes.fromhex("fe800000000000000000000000000001")),
        (pointer, 16, 0x8001, b"\x04text"),  # TXT: skipped
        (labels("other.local"), 1, 3, bytes([10, 0, 0, 1])),  # another class: skipped
        questions=question,
        qdcount=1,
        additional=1,
    )
    assert decode_answers(packet) == [(NAME, "192.168.1.20"), (NAME, "fe80::1")]


def test_names_are_compared_in_lower_case() -> None:
    packet = response((labels(NAME.upper()), 1, 1, bytes([10, 1, 2, 3])))
    assert decode_answers(packet) == [(NAME, "10.1.2.3")]


def test_a_record_of_the_wrong_length_is_skipped() -> None:
    assert decode_answers(response((labels(NAME), 1, 1, b"\x01\x02\x03"))) == []


@pytest.mark.parametrize(
    "packet",
    [
        b"\x00" * 11,
        response((labels(NAME), 1, 1, bytes(4)))[:-2],  # data cut short
        response((labels(NAME)[:-3], 1, 1, bytes(4)))[:20],  # name cut short
        struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + b"\xc0\x0c",  # pointer to itself
        struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + b"\xc0",  # truncated pointer
        struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + b"\x80abc",  # unknown label type
        struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0)
        + (b"\x3f" + b"a" * 63) * 5
        + b"\x00"
        + struct.pack("!HHIH", 1, 1, 0, 4)
        + bytes(4),  # name over 253 bytes
        struct.pack("!HHHHHH", 0, 0x8400, 0, 3, 0, 0),  # records announced, none there
    ],
)
def test_malformed_packets_raise(packet: bytes) -> None:
    with pytest.raises(MdnsError):
        decode_answers(packet)


def test_random_responses_never_crash() -> None:
    chooser = random.Random(16)
    for _ in range(2000):
        header = struct.pack("!HHHHHH", 0, 0x8400, *(chooser.randrange(4) for _ in range(4)))
        packet = header + bytes(chooser.randrange(256) for _ in range(chooser.randrange(80)))
        with contextlib.suppress(MdnsError):
            decode_answers(packet)
