"""A real signaler process relaying between real WebSocket members."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import StartSignaler
from tests.e2e.processes import SignalerProcess
from tests.e2e.wsclient import OP_BINARY, OP_CONT, OP_TEXT, client_frame, raw_join, read_frame
from weron.manager import Manager

API = ("admin", "api-secret")


async def members(signaler: SignalerProcess, community: str, count: int) -> list[ClientConnection]:
    return [await connect(signaler.join_url(community, "pw")) for _ in range(count)]


async def test_relays_to_every_other_member_only(signaler: SignalerProcess) -> None:
    alice, bob, carol = await members(signaler, "friends", 3)
    (outsider,) = await members(signaler, "strangers", 1)
    await alice.send(b"\x00hello", text=False)
    async with asyncio.timeout(5):
        assert await bob.recv(decode=False) == b"\x00hello"
        assert await carol.recv(decode=False) == b"\x00hello"
    for silent in (alice, outsider):
        try:
            async with asyncio.timeout(0.3):
                await silent.recv()
            raise AssertionError("message delivered to the sender or to another community")
        except TimeoutError:
            pass
    for member in (alice, bob, carol, outsider):
        await member.close()


async def test_invalid_utf8_text_frame_is_relayed_unchanged(signaler: SignalerProcess) -> None:
    """Go peers send encrypted bytes in text frames: they must pass through untouched."""
    payload = b"\xff\xfe\x00\xc3(" + bytes(range(256))
    receiver_reader, receiver_writer, _ = await raw_join(signaler.port, "go", "pw")
    _, sender_writer, head = await raw_join(signaler.port, "go", "pw")
    assert head.startswith(b"HTTP/1.1 101")
    sender_writer.write(client_frame(OP_TEXT, payload))
    async with asyncio.timeout(5):
        opcode, received = await read_frame(receiver_reader)
    assert (opcode, received) == (OP_TEXT, payload)
    for writer in (receiver_writer, sender_writer):
        writer.close()


async def test_binary_and_fragmented_messages_keep_type_and_boundaries(
    signaler: SignalerProcess,
) -> None:
    receiver_reader, receiver_writer, _ = await raw_join(signaler.port, "frag", "pw")
    _, sender_writer, _ = await raw_join(signaler.port, "frag", "pw")
    sender_writer.write(client_frame(OP_BINARY, b"\x01\x02"))
    sender_writer.write(client_frame(OP_TEXT, b"first ", fin=False))
    sender_writer.write(client_frame(OP_CONT, b"second ", fin=False))
    sender_writer.write(client_frame(OP_CONT, b"third", fin=True))
    async with asyncio.timeout(5):
        assert await read_frame(receiver_reader) == (OP_BINARY, b"\x01\x02")
        assert await read_frame(receiver_reader) == (OP_TEXT, b"first second third")
    for writer in (receiver_writer, sender_writer):
        writer.close()


async def test_client_counts_follow_joins_and_leaves(signaler: SignalerProcess) -> None:
    manager = Manager(signaler.http_url, *API)
    await manager.create("club", "pw")
    joined = await members(signaler, "club", 3)
    await members(signaler, "pop-up", 1)  # ephemeral, left open until the process ends
    counts = {c.id: (c.clients, c.persistent) for c in await manager.list()}
    assert counts == {"club": (3, True), "pop-up": (1, False)}
    for member in joined:
        await member.close()
    async with asyncio.timeout(5):
        while [c.clients for c in await manager.list() if c.id == "club"] != [0]:
            await asyncio.sleep(0.05)
    assert any(c.id == "club" and c.persistent for c in await manager.list())


async def test_ephemeral_community_disappears_with_its_last_member(
    signaler: SignalerProcess,
) -> None:
    manager = Manager(signaler.http_url, *API)
    first, second = await members(signaler, "fleeting", 2)
    assert [c.id for c in await manager.list()] == ["fleeting"]
    await first.close()
    await second.close()
    async with asyncio.timeout(5):
        while await manager.list():
            await asyncio.sleep(0.05)


async def test_deleting_a_community_disconnects_its_members(signaler: SignalerProcess) -> None:
    manager = Manager(signaler.http_url, *API)
    await manager.create("doomed", "pw")
    doomed = await members(signaler, "doomed", 2)
    (survivor,) = await members(signaler, "other", 1)
    await manager.delete("doomed")
    for member in doomed:
        async with asyncio.timeout(5):
            await member.wait_closed()
        assert member.close_code == 1000
        assert member.close_reason == "community deleted"
    assert [c.id for c in await manager.list()] == ["other"]
    await survivor.ping()
    await survivor.close()


async def test_sigterm_says_goodbye_to_members_and_exits_cleanly(
    signaler_factory: StartSignaler,
) -> None:
    signaler = signaler_factory()
    (member,) = await members(signaler, "bye", 1)
    signaler.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        await member.wait_closed()
    assert member.close_code == 1001
    assert await asyncio.to_thread(signaler.process.wait, 10) == 0
    assert "Shutting down" in signaler.messages()


async def test_member_that_never_answers_pings_is_dropped(signaler: SignalerProcess) -> None:
    """Heartbeat 2s: a member reading frames but never sending pongs is cut off."""
    reader, writer, _ = await raw_join(signaler.port, "mute", "pw")
    manager = Manager(signaler.http_url, *API)
    pings = 0
    async with asyncio.timeout(10):
        try:
            while True:
                opcode, _ = await read_frame(reader)
                pings += opcode == 0x9
        except asyncio.IncompleteReadError:
            pass
    assert pings >= 1
    assert await manager.list() == []
    assert "Dropping client: no pong within heartbeat" in signaler.messages()
    writer.close()


async def test_member_that_stops_reading_does_not_stall_the_others(
    signaler: SignalerProcess,
) -> None:
    """A member whose TCP window closed is dropped once its backlog passes the bound, while
    the healthy member receives every message."""
    _, stalled_writer, _ = await raw_join(signaler.port, "crowd", "pw")
    healthy = await connect(signaler.join_url("crowd", "pw"), max_size=None)
    sender = await connect(signaler.join_url("crowd", "pw"))
    chunk = bytes(64 * 1024)
    count = 400  # 25 MiB: beyond the 8 MiB backlog plus what the kernel buffers
    window = 16  # the sender stays at most 1 MiB ahead of the healthy member: it keeps up
    received = 0
    progress = asyncio.Condition()

    async def receive_all() -> None:
        nonlocal received
        while received < count:
            assert len(await healthy.recv(decode=False)) == len(chunk)
            async with progress:
                received += 1
                progress.notify_all()

    receiving = asyncio.create_task(receive_all())
    async with asyncio.timeout(60):
        for sent in range(count):

            def within_window(ahead: int = sent) -> bool:
                return ahead - received < window

            async with progress:
                await progress.wait_for(within_window)
            await sender.send(chunk)
        await receiving
    assert received == count
    assert "Dropping client that fell too far behind" in signaler.messages()
    stalled_writer.close()
    await healthy.close()
    await sender.close()


async def test_oversized_message_closes_with_1009_and_others_carry_on(
    signaler: SignalerProcess,
) -> None:
    big = await connect(signaler.join_url("size", "pw"), max_size=None)
    (other,) = await members(signaler, "size", 1)
    await big.send(bytes((1 << 20) + 1))  # the documented limit is 1 MiB
    async with asyncio.timeout(5):
        await big.wait_closed()
    assert big.close_code == 1009
    partner = await connect(signaler.join_url("size", "pw"))
    await partner.send(b"still relaying")
    async with asyncio.timeout(5):
        assert await other.recv(decode=False) == b"still relaying"
    await other.close()
    await partner.close()


async def test_invalid_frames_close_only_the_offender(signaler: SignalerProcess) -> None:
    (bystander,) = await members(signaler, "proto", 1)
    reader, writer, _ = await raw_join(signaler.port, "proto", "pw")
    writer.write(client_frame(OP_TEXT, b"unmasked", mask=False))  # clients must mask
    async with asyncio.timeout(5):
        opcode, payload = await read_frame(reader)
    assert opcode == 0x8 and int.from_bytes(payload[:2]) == 1002
    reader, writer, _ = await raw_join(signaler.port, "proto", "pw")
    writer.write(client_frame(OP_CONT, b"continuation without start"))
    async with asyncio.timeout(5):
        opcode, payload = await read_frame(reader)
    assert opcode == 0x8 and int.from_bytes(payload[:2]) == 1002
    try:
        async with asyncio.timeout(0.3):
            await bystander.recv()
        raise AssertionError("garbage reached the bystander")
    except TimeoutError:
        pass
    await bystander.ping()
    await bystander.close()


async def test_members_see_connection_closed_not_a_hang_when_signaler_dies(
    signaler_factory: StartSignaler,
) -> None:
    signaler = signaler_factory()
    (member,) = await members(signaler, "crash", 1)
    signaler.stop(signal.SIGKILL)
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionClosed):
            await member.recv()
