"""A STUN response counts only from where the answer is due: a forged one from another
address, with the right transaction id, is ignored (real UDP sockets on loopback)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aioice import stun

from weron.wireguard.nat.discover import stun_socket
from weron.wireguard.nat.stun import CHANGE_IP, CHANGE_PORT, answer_source, binding

SERVER = ("192.0.2.1", 3478)
OTHER = ("192.0.2.2", 3479)


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def response(request: stun.Message, mapped: tuple[str, int]) -> bytes:
    message = stun.Message(
        stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=request.transaction_id
    )
    message.attributes["XOR-MAPPED-ADDRESS"] = mapped
    return bytes(message)


async def test_a_forged_response_from_another_address_is_ignored() -> None:
    loop = asyncio.get_running_loop()
    with udp() as server, udp() as forger:
        async with stun_socket("127.0.0.1") as (agent, port):
            asking = asyncio.create_task(binding(agent, server.getsockname()))
            data, client = await loop.sock_recvfrom(server, 2048)
            request = stun.parse_message(data)
            await loop.sock_sendto(forger, response(request, ("203.0.113.66", 666)), client)
            await asyncio.sleep(0.1)  # the forgery arrives first
            assert not asking.done()
            await loop.sock_sendto(server, response(request, ("127.0.0.1", port)), client)
            assert (await asyncio.wait_for(asking, 5)).mapped == ("127.0.0.1", port)


@pytest.mark.parametrize(
    ("change", "other", "accepted", "refused"),
    [
        (0, None, [SERVER], [("192.0.2.1", 3479), OTHER]),
        (CHANGE_PORT, OTHER, [("192.0.2.1", 3479), ("192.0.2.1", 1)], [SERVER, OTHER]),
        (CHANGE_IP | CHANGE_PORT, OTHER, [OTHER], [SERVER, ("192.0.2.2", 3478), ("6.6.6.6", 1)]),
        (CHANGE_IP, OTHER, [("192.0.2.2", 3478)], [OTHER, SERVER]),
        (CHANGE_IP | CHANGE_PORT, None, [OTHER, ("6.6.6.6", 1)], [SERVER, ("192.0.2.1", 1)]),
    ],
)
def test_where_an_answer_may_come_from(
    change: int,
    other: tuple[str, int] | None,
    accepted: list[tuple[str, int]],
    refused: list[tuple[str, int]],
) -> None:
    accept = answer_source(SERVER, change, other)
    assert all(accept(source) for source in accepted)
    assert not any(accept(source) for source in refused)
