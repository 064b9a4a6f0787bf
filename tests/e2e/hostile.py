"""A hostile member: joins a community with the right password and key, and sends what the
protocol allows but no honest peer would. Built on the library, run as a process by the tests:

    python -m tests.e2e.hostile --raddr URL --community C --password P --key K ACTION ...

Actions:
  introductions N          N introductions under fresh random ids, in one burst
  forge ID [ID ...]        introductions under other members' ids, every 0.1 s
  gonet-cards ID [ID ...]  gonet cards (IDs: members' public keys) in each other's names, to
                           loopback addresses of sockets it holds: MAX_CARDS unsigned ones
                           and one signed with its own key (for the room --place, hex) to a
                           member that introduces itself (and to the others, in its name),
                           then, each time a member's card passes by, MAX_CARDS unsigned ones
                           to its recipient; prints "answered ID" once the cards for ID's
                           introduction went out
  kick NAME [NAME ...]     connect to everyone on the chat channels, then kick (and back off)
                           every NAME on each id channel, every 0.1 s, without holding any
  echo-claims TIMESTAMP    connect to everyone on the chat channels, greet with TIMESTAMP (1:
                           older than anyone) and no candidate, and answer every `claimed` with
                           the same claim, as a member that claimed that name at the same time
  forward NAME EXPOSED CLOSED
                           claim a name on `weron forward`'s id channel, then on NAME's
                           connection: open streams to port CLOSED (not exposed), more streams
                           to port EXPOSED than NAME admits at once (kept open), garbage frames
                           and channel labels no forwarder opens
  claim NAME               connect to everyone on the chat channels and claim NAME (any text:
                           escape sequences, thousands of characters), holding the connection

It runs until killed (the tests stop it), printing "ready" once its work has started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import socket
import time
import uuid
from collections.abc import Iterator

from weron.net import port_forward
from weron.peers import Peer, names
from weron.peers.adapter import Adapter, AdapterConfig
from weron.peers.named import NamedAdapter
from weron.rendezvous.card import Card
from weron.signaler_client.client import SignalingClient, SignalingSession
from weron.signaler_client.messages import EXCHANGE_TYPES, Exchange, Introduction, MessageType
from weron.webrtc import ChannelClosedError, ChannelSpec
from weron.webrtc.backends import load_backend
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.keys import decode_key
from weron.wireguard.nat.paths import MAX_CARDS, Candidate, Kind


async def _introductions(session: SignalingSession, count: int) -> None:
    for _ in range(count):
        await session.send(Introduction(str(uuid.uuid4())))
    print("ready", flush=True)


async def _forge(session: SignalingSession, ids: list[str]) -> None:
    print("ready", flush=True)
    while True:
        for victim in ids:
            await session.send(Introduction(victim))
        await asyncio.sleep(0.1)


async def _gonet_cards(session: SignalingSession, ids: list[str], place: bytes) -> None:
    """Forged cards: enough to fill every slot before a newcomer can meet the others, and
    one signed by the wrong key; a flood after every genuine card (no path works yet on the
    recipient's side when it comes)."""
    mallory = PrivateKey.generate()
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(type=socket.SOCK_DGRAM)) for _ in range(32)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        ports: Iterator[int] = itertools.cycle(sock.getsockname()[1] for sock in sockets)

        async def forge(victim: str, recipient: str, *, signed: bool = False) -> None:
            card = Card(decode_key(victim), (Candidate(Kind.HOST, ("127.0.0.1", next(ports))),))
            if signed:  # by mallory's key, not the victim's
                card = card.signed(mallory, place, time.time_ns() // 1_000_000)
            await session.send(Exchange(MessageType.ANSWER, victim, recipient, card.encode()))

        print("ready", flush=True)
        async for message in session:
            if isinstance(message, Introduction) and message.sender in ids:
                for other in ids:
                    if other != message.sender:
                        for victim, recipient in ((other, message.sender), (message.sender, other)):
                            await forge(victim, recipient, signed=True)
                            for _ in range(MAX_CARDS):
                                await forge(victim, recipient)
                print("answered", message.sender, flush=True)
            elif (
                isinstance(message, Exchange)
                and message.type in EXCHANGE_TYPES - {MessageType.CANDIDATE}
                and message.sender in ids
                and message.recipient in ids
            ):
                for _ in range(MAX_CARDS):
                    await forge(message.sender, message.recipient)


async def _kick(peer: Peer, targets: list[str]) -> None:
    with contextlib.suppress(ChannelClosedError):
        while True:
            for name in targets:
                await peer.conn.send(names.encode(names.Kick(name)))
            await peer.conn.send(names.encode(names.Backoff()))
            await asyncio.sleep(0.1)


async def _echo_claims(peer: Peer, timestamp: int) -> None:
    with contextlib.suppress(ChannelClosedError):
        await peer.conn.send(names.encode(names.Greeting((), timestamp)))
        while True:
            for message in names.decode(await peer.conn.receive()):
                if isinstance(message, names.Claimed):
                    await peer.conn.send(names.encode(message))


async def _claim(peer: Peer, name: str) -> None:
    with contextlib.suppress(ChannelClosedError):
        await peer.conn.send(names.encode(names.Greeting((), time.time_ns())))
        await peer.conn.send(names.encode(names.Claimed(name)))
        while True:
            await peer.conn.receive()


async def _on_every_id_channel(args: argparse.Namespace) -> None:
    adapter = Adapter(
        args.raddr,
        args.community,
        args.password,
        args.key,
        ["weron/chat/id", "weron/chat/primary"],
        load_backend("libdatachannel"),
        AdapterConfig(timeout=2.0, ice=()),
    )
    await adapter.open()
    print("ready", flush=True)
    tasks: set[asyncio.Task[None]] = set()
    try:
        async for peer in adapter.peers():
            if peer.channel_id == "weron/chat/id":
                if args.action == "kick":
                    work = _kick(peer, args.targets)
                elif args.action == "claim":
                    work = _claim(peer, args.targets[0])
                else:
                    work = _echo_claims(peer, int(args.targets[0]))
                task = asyncio.create_task(work)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    finally:
        await adapter.close()


_GARBAGE_FRAMES = (b"", b"\x09junk", b"\x03\x00", b"\x03\x00\x00", b"\x00outside a stream")
_GARBAGE_LABELS = ("weron/forward/tcp/x", "weron/forward/udp/0", "weron/forward/ssh/1")


async def _forward(args: argparse.Namespace) -> None:
    """Everything a forwarder must refuse, then stay (holding the streams) until killed."""
    target, exposed, closed = args.targets[0], int(args.targets[1]), int(args.targets[2])
    adapter = NamedAdapter(
        args.raddr,
        args.community,
        args.password,
        args.key,
        [],
        load_backend("libdatachannel"),
        names=["mallory"],
        id_channel=port_forward.ID_CHANNEL,
        kicks=1.0,
        config=AdapterConfig(timeout=5.0, ice=(), later_labels=port_forward.is_forward_label),
    )
    await adapter.open()
    await adapter.next_name()
    await adapter.until_named(target)
    held = []
    serial = 0

    async def channel(label: str | None = None) -> Peer:
        nonlocal serial
        serial += 1
        return await adapter.open_channel(
            target, ChannelSpec(label or port_forward.tcp_label(serial))
        )

    for _ in range(20):  # refused: the port is not exposed
        peer = await channel()
        await peer.conn.send(port_forward.open_frame(closed))
        await peer.conn.send(port_forward.data_frame(b"let me in"))
        held.append(peer)
    for _ in range(40):  # more at once than the forwarder admits from one member
        peer = await channel()
        await peer.conn.send(port_forward.open_frame(exposed))
        held.append(peer)
    for frame in _GARBAGE_FRAMES:
        peer = await channel()
        await peer.conn.send(frame)
        held.append(peer)
    for label in _GARBAGE_LABELS:
        with contextlib.suppress(ConnectionError):
            held.append(await channel(label))
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await adapter.close()


async def main(args: argparse.Namespace) -> None:
    if args.action == "forward":
        await _forward(args)
        return
    if args.action in ("kick", "echo-claims", "claim"):
        await _on_every_id_channel(args)
        return
    client = SignalingClient(args.raddr, args.community, args.password, args.key)
    session = await client.connect()
    if args.action == "introductions":
        await _introductions(session, int(args.targets[0]))
    elif args.action == "gonet-cards":
        await _gonet_cards(session, args.targets, bytes.fromhex(args.place))
    else:
        await _forge(session, args.targets)
    await asyncio.Event().wait()  # stay a member until killed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--raddr", "--community", "--password", "--key"):
        parser.add_argument(flag, required=True)
    parser.add_argument(
        "action",
        choices=[
            "introductions",
            "forge",
            "gonet-cards",
            "kick",
            "echo-claims",
            "claim",
            "forward",
        ],
    )
    parser.add_argument("--place", default="", help="gonet-cards: the room's place, hex")
    parser.add_argument("targets", nargs="+")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
