"""`gonet lobby/room/key`: ASCII chat between every member of a room, each pair over its own
WireGuard session (full mesh), members found through a weron signaler or the DHT.

Lines typed on stdin go to every member as UDP datagrams inside the tunnels, acknowledged and
sent again while a path heals (``weron.apps.delivery``); what members send is printed as
``name: text``, joins as ``+name``, leaves as ``-name``, a line a member did not acknowledge
in time as ``!not delivered to name: text``, and the path to a member as ``~name direct`` or
``~name relay`` whenever it changes. Only members whose handshake completed (same room key,
hence same PSK) are ever shown.

Paths through NATs are ``weron.wireguard.nat``'s: STUN and TURN on the WireGuard socket,
candidates in the cards, hole punching, relay fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TextIO

from weron.apps.ascii import is_printable_ascii
from weron.apps.console import (
    Screen,
    console,
    escape,
    next_line,
    until,
)
from weron.apps.delivery import Delivery, Failure, Send
from weron.apps.roster import (
    CHAT_PORT,
    MAX_TEXT,
    VERSION,
    Ack,
    Bye,
    ChatMessage,
    ChatMessageError,
    Hello,
    Line,
    Posted,
    Roster,
    Version,
    decode_chat,
    encode_chat,
)
from weron.extras import needs_extra
from weron.log import get_logger, redact_url
from weron.net.endpoints import Endpoint
from weron.rendezvous import Rendezvous
from weron.rendezvous.card import Card
from weron.rendezvous.room import Room, RoomSecrets, derive
from weron.rendezvous.via_server import SignalerRendezvous
from weron.urls import parse_url
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.device import WireGuardPeer
from weron.wireguard.ip import UdpPacket
from weron.wireguard.nat.paths import Candidate, Route
from weron.wireguard.nat.traversal import Traversal
from weron.wireguard.nat.turn import TurnServer
from weron.wireguard.overlay import UdpOverlay

log = get_logger(__name__)
IPV6_PROBE: Final = "2001:db8::1"  # any global address: only the route to it is looked up


@dataclass(slots=True)
class GonetConfig:
    raddr: str
    room: Room
    name: str
    private_key: PrivateKey
    host: str = "::"  # IPv6 and IPv4
    port: int = 0
    timeout: float = 15.0  # a member silent this long has left; a line unacknowledged, lost
    signaler_timeout: float = 5.0  # signaler heartbeat and retry: cards flow soon after a drop
    stun: list[tuple[str, int]] = field(default_factory=list)
    turn: TurnServer | None = None
    dht: bool = False
    dht_bootstrap: list[tuple[str, int]] = field(default_factory=list)


def host_endpoints(bound: Endpoint, toward: Sequence[str]) -> list[Endpoint]:
    """Where members can reach our socket on our own networks: its own address if bound to
    one, else the addresses this host uses toward the given hosts (signaler, STUN servers;
    no packet is sent to find them out), and on a dual-stack socket our global IPv6 address
    (IPv6 needs no NAT: members punch it directly)."""
    host, port = bound
    if host not in ("0.0.0.0", "::", ""):
        return [(host, port)]
    found: list[Endpoint] = []
    for target in toward:
        try:
            address = socket.getaddrinfo(target, 9, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
            endpoint = (_source_address(socket.AF_INET, str(address)), port)
        except OSError as exc:
            log.warning("Cannot tell our address toward a host", host=target, reason=str(exc))
            continue
        if endpoint not in found:
            found.append(endpoint)
    if host == "::":
        try:
            found.append((_source_address(socket.AF_INET6, IPV6_PROBE), port))
        except OSError as exc:
            log.info("No IPv6 address toward the internet", reason=str(exc))
    return found or [("127.0.0.1", port)]


def _source_address(family: socket.AddressFamily, target: str) -> str:
    """Our address toward ``target``, as routing picks it (connecting UDP sends nothing)."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((target, 9))
        return str(probe.getsockname()[0])


def _rendezvous(config: GonetConfig, secrets: RoomSecrets, card: Card) -> Rendezvous:
    if config.dht:
        from weron.rendezvous.dht import DhtRendezvous  # libtorrent only when asked for

        return DhtRendezvous(secrets, card, bootstrap=config.dht_bootstrap)
    return SignalerRendezvous(config.raddr, secrets, card, timeout=config.signaler_timeout)


def _meeting_hosts(config: GonetConfig) -> list[str]:
    hosts = [host for host, _ in config.stun]
    if config.turn is not None:
        hosts.append(config.turn.host)
    if config.dht:
        hosts += [host for host, _ in config.dht_bootstrap]
    else:
        parts = parse_url(config.raddr, ("ws", "wss"))  # a bad one fails in the rendezvous
        hosts.append((parts.hostname if parts else None) or "127.0.0.1")
    return hosts


class _Room:
    """The chat: roster, screen and overlay tied together."""

    def __init__(self, config: GonetConfig, screen: Screen, psk: bytes) -> None:
        self._config = config
        self._screen = screen
        self._psk = psk
        self.roster = Roster(config.private_key.public, config.name)
        self.overlay = UdpOverlay(config.private_key, self._datagram)
        self.traversal = Traversal(
            self.overlay.endpoint, stun=config.stun, turn=config.turn, on_route=self._route
        )
        self.peers: dict[bytes, WireGuardPeer] = {}
        self.delivery = Delivery(config.timeout)
        self.changed = asyncio.Event()  # lines said or acknowledged: the delivery loop wakes
        self.settled = asyncio.Event()  # no line waits for acks
        self.settled.set()
        self._joined = False  # no name is shown as ours before the rendezvous let us in

    @property
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def join(self, rendezvous: Rendezvous) -> None:
        """Progress on the prompt line until the rendezvous let us in, then our name."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        joined = asyncio.ensure_future(rendezvous.joined())
        try:
            while not joined.done():
                self._screen.prompt = f"joining… ({round(loop.time() - started)} s) "
                await asyncio.wait({joined}, timeout=1)
        finally:
            joined.cancel()
        self._joined = True
        self.show_own_name()

    def show_own_name(self) -> None:
        shown = self.roster.own_display
        if self._joined and self._screen.prompt != f"{shown}> ":
            self._screen.prompt = f"{shown}> "
            self._screen.line(f"{shown}!")

    def meet(self, card: Card) -> None:
        if not card.candidates or card.public_key == self._config.private_key.public:
            return
        peer = self.overlay.add_peer(card.public_key, psk=self._psk)
        self.traversal.add(peer, card.candidates)
        self.peers[card.public_key] = peer
        for message in self._hello():
            self.overlay.sendto(encode_chat(message), peer, CHAT_PORT)

    def _hello(self) -> tuple[ChatMessage, ...]:
        return Hello(self._config.name), Version(VERSION)

    def _route(self, peer: WireGuardPeer, route: Route | None) -> None:
        if route is not None and peer.public_key in self.roster:
            self._screen.line(f"~{self.roster.display(peer.public_key)} {route}")

    def say(self, text: str) -> None:
        if not text:
            return
        if not is_printable_ascii(text) or len(text) > MAX_TEXT:
            self._screen.line(f"!not sent: only printable ASCII, at most {MAX_TEXT} characters")
            return
        sends = self.delivery.say(text, self.peers, self._now)
        if sends is None:
            self._screen.line(f"!not sent: {self.delivery.waiting} lines still wait for acks")
            return
        self._send(sends)
        self._delivery_changed()

    def send_due(self) -> float | None:
        """Send the copies due, report the lines given up on; when to come back."""
        sends, failures = self.delivery.tick(self._now)
        self._send(sends)
        for failure in failures:
            self._failed(self.roster.display(failure.member), failure)
        self._delivery_changed()
        return self.delivery.next_deadline()

    def _delivery_changed(self) -> None:
        self.changed.set()
        if self.delivery.waiting:
            self.settled.clear()
        else:
            self.settled.set()

    def heartbeat(self) -> None:
        for message in self._hello():
            self._broadcast(encode_chat(message))
        for key, shown in self.roster.expire(self._now, self._config.timeout):
            self._forget(key, shown)
        self.show_own_name()

    def leave(self) -> None:
        self._broadcast(encode_chat(Bye()))

    def _broadcast(self, data: bytes) -> None:
        for peer in self.peers.values():
            self.overlay.sendto(data, peer, CHAT_PORT)

    def _send(self, sends: list[Send]) -> None:
        for send in sends:
            peer = self.peers.get(send.to)
            if peer is not None:
                self.overlay.sendto(encode_chat(send.message), peer, CHAT_PORT)

    def _failed(self, shown: str, failure: Failure) -> None:
        self._screen.line(f"!not delivered to {shown}: {escape(failure.text)}")

    def _datagram(self, peer: WireGuardPeer, datagram: UdpPacket) -> None:
        if datagram.destination_port != CHAT_PORT:
            log.debug("Dropped datagram for another port", port=datagram.destination_port)
            return
        try:
            message = decode_chat(datagram.payload)
        except ChatMessageError as exc:
            log.debug("Dropped malformed chat message", reason=str(exc))
            return
        key = peer.public_key
        if isinstance(message, Hello):
            if self.roster.hello(key, message.name, self._now):
                self._screen.line(f"+{self.roster.display(key)}")
                self._route(peer, self.traversal.route(peer))
                self.show_own_name()
        elif key not in self.roster:
            log.debug("Dropped chat message from a member that did not say hello")
        elif isinstance(message, Version):
            self.delivery.version(key, message.number)
        elif isinstance(message, Line | Posted):
            self.roster.seen(key, self._now)
            show = True
            if isinstance(message, Posted):
                ack, show = self.delivery.received(key, message)
                self._send([ack])
            if show:
                self._screen.line(f"{self.roster.display(key)}: {escape(message.text)}")
        elif isinstance(message, Ack):
            self.roster.seen(key, self._now)
            self.delivery.acked(key, message, self._now)
            self._delivery_changed()
        else:
            shown = self.roster.leave(key)
            if shown is not None:
                self._forget(key, shown)
                self.show_own_name()

    def _forget(self, key: bytes, shown: str) -> None:
        """A member left: said, with the lines it did not acknowledge; no more heartbeats nor
        handshakes toward it (if it comes back, the rendezvous hands us its card again)."""
        self._screen.line(f"-{shown}")
        for failure in self.delivery.forget(key):
            self._failed(shown, failure)
        self._delivery_changed()
        peer = self.peers.pop(key, None)
        if peer is not None:
            self.traversal.remove(peer)
        self.overlay.remove_peer(key)


async def run(
    config: GonetConfig, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> None:
    """Chat until stdin ends (EOF) or the task is cancelled (Ctrl-C, SIGTERM); leaving is
    announced to every member."""
    if config.dht:
        with needs_extra("dht", "--dht"):  # now, not once the room is derived and joined
            importlib.import_module("libtorrent")
    secrets = await asyncio.to_thread(derive, config.room)
    with console(stdin or sys.stdin, stdout or sys.stdout) as (screen, lines):
        room = _Room(config, screen, secrets.psk)
        bound = await room.overlay.open(config.host, config.port)
        try:
            host = await asyncio.to_thread(host_endpoints, bound, _meeting_hosts(config))
            candidates = await room.traversal.start(host)
            rendezvous = _rendezvous(config, secrets, Card(config.private_key.public, candidates))
        except BaseException:
            await room.traversal.close()
            room.overlay.close()
            raise
        log.info("Joining room", candidates=[c.encode() for c in candidates])
        screen.line("." + ("dht" if config.dht else redact_url(config.raddr)))
        await _chat(config, room, rendezvous, lines)


async def _chat(
    config: GonetConfig,
    room: _Room,
    rendezvous: Rendezvous,
    lines: asyncio.Queue[str | None],
) -> None:
    announcements: set[asyncio.Task[None]] = set()

    def announce(candidates: tuple[Candidate, ...]) -> None:
        task = asyncio.create_task(rendezvous.announce(Card(config.private_key.public, candidates)))
        announcements.add(task)
        task.add_done_callback(announcements.discard)

    room.traversal.on_candidates = announce

    async def meet() -> None:
        async for card in rendezvous.members():
            room.meet(card)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(config.timeout / 3)
            room.heartbeat()

    async def send_due() -> None:
        while True:
            deadline = room.send_due()
            room.changed.clear()
            delay = None if deadline is None else deadline - asyncio.get_running_loop().time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room.changed.wait(), delay)

    tasks = (meet(), heartbeat(), send_due())
    background = [asyncio.create_task(task) for task in tasks]
    joining = asyncio.create_task(room.join(rendezvous))
    try:
        while True:
            line = await next_line(lines, background)
            if line is None:
                break
            room.say(line)
        # End of input: what was said is delivered or reported first.
        await until(room.settled.wait(), background)
    finally:
        joining.cancel()
        room.leave()
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await rendezvous.close()
        await room.traversal.close()
        room.overlay.close()
