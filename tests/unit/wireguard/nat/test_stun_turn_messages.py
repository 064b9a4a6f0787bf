"""STUN and TURN on a shared socket, without sockets: demultiplexing, transactions matched by
id, bad input dropped, ChannelData and Data indications unwrapped, TURN server flags."""

from __future__ import annotations

import asyncio
import random

import pytest
from aioice import stun

from weron.net.endpoints import Endpoint
from weron.wireguard.messages import message_type
from weron.wireguard.nat.stun import CHANGE_IP, StunAgent, StunError, binding, is_stun, parse
from weron.wireguard.nat.turn import TurnClient, TurnServer, is_channel_data

SERVER = ("198.51.100.1", 3478)


def binding_response(request: bytes, mapped: Endpoint) -> bytes:
    parsed = parse(request)
    assert parsed is not None
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, parsed.transaction_id)
    response.attributes["XOR-MAPPED-ADDRESS"] = mapped
    response.attributes["OTHER-ADDRESS"] = ("198.51.100.250", 3479)
    response.add_fingerprint()
    return bytes(response)


def test_stun_channel_data_and_wireguard_tell_apart_by_their_first_bytes() -> None:
    request = bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    assert is_stun(request) and not is_channel_data(request) and not message_type(request)
    channel_data = b"\x40\x00\x00\x04abcd"
    assert is_channel_data(channel_data) and not is_stun(channel_data)
    initiation = b"\x01\x00\x00\x00" + bytes(144)
    assert message_type(initiation) == 1 and not is_stun(initiation)
    assert not is_channel_data(initiation)


async def test_a_binding_is_answered_by_its_transaction_and_strays_are_dropped() -> None:
    sent: list[tuple[bytes, Endpoint]] = []
    agent = StunAgent(lambda data, address: sent.append((data, address)))
    task = asyncio.create_task(binding(agent, SERVER, change=CHANGE_IP))
    await asyncio.sleep(0)
    request, address = sent[0]
    assert address == SERVER and parse(request).attributes["CHANGE-REQUEST"] == CHANGE_IP  # type: ignore[union-attr]
    stray = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE)  # no such transaction
    assert agent.datagram_received(bytes(stray), SERVER) is None
    rng = random.Random(5)
    for size in (0, 19, 20, 40, 100):
        assert agent.datagram_received(rng.randbytes(size), SERVER) is None
    truncated = binding_response(request, ("203.0.113.7", 40000))
    for cut in range(20, len(truncated)):
        assert agent.datagram_received(truncated[:cut], SERVER) is None
    assert not task.done()
    agent.datagram_received(truncated, ("198.51.100.250", 3479))
    result = await task
    assert result.mapped == ("203.0.113.7", 40000)
    assert result.other == ("198.51.100.250", 3479)
    assert result.origin == ("198.51.100.250", 3479)


async def test_an_unanswered_binding_is_a_stun_error() -> None:
    agent = StunAgent(lambda data, address: None)
    with pytest.raises(StunError, match="timed out"):
        await binding(agent, SERVER, retransmissions=0)


def test_turn_server_flags_parse_and_never_show_the_password() -> None:
    server = TurnServer.parse("lab:pa:ss@turn:198.51.100.1:3478")
    assert (server.host, server.port, server.username, server.password) == (
        "198.51.100.1", 3478, "lab", "pa:ss",
    )  # fmt: skip
    assert "pa:ss" not in repr(server)
    for text in ("198.51.100.1:3478", "lab@host:3478", "lab:pw@host", "lab:pw@host:0", ":pw@h:1"):
        with pytest.raises(ValueError):
            TurnServer.parse(text)


def test_relayed_data_for_unknown_channels_or_malformed_is_dropped() -> None:
    client = TurnClient(StunAgent(lambda d, a: None), lambda d, a: None, SERVER, "u", "p")
    assert client.unwrap(b"\x40\x00\x00\x04abcd") is None  # no channel bound
    assert client.unwrap(b"\x40") is None
    indication = stun.Message(stun.Method.DATA, stun.Class.INDICATION)
    indication.attributes["XOR-PEER-ADDRESS"] = ("198.51.100.4", 5000)
    indication.attributes["DATA"] = b"wireguard bytes"
    parsed = parse(bytes(indication))
    assert parsed is not None
    assert client.indication(parsed) == (b"wireguard bytes", ("198.51.100.4", 5000))
    del indication.attributes["DATA"]
    parsed = parse(bytes(indication))
    assert parsed is not None and client.indication(parsed) is None
