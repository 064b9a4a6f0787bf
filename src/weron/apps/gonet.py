"""`gonet lobby/room/key`: ASCII chat between every member of a room, each pair over its own
WireGuard session (full mesh), members found through a weron signaler or the DHT.

Lines typed on stdin go to every member as UDP datagrams inside the tunnels, acknowledged and
sent again while a path heals (``weron.apps.delivery``); what members send is printed as
``name: text``, joins as ``+name``, leaves as ``-name``, a member now shown under another
name (it said another name, or shares its name with a member who came or left) as
``*old is now new``, a line a member did not acknowledge
in time as ``!not delivered to name: text``, and the path to a member as ``~name direct`` or
``~name relay`` whenever it changes. Only members whose handshake completed (same room key,
hence same PSK) are ever shown.

Paths through NATs are ``weron.wireguard.nat``'s: STUN and TURN on the WireGuard socket,
candidates in the cards, hole punching, relay fallback.

:class:`GonetChat` is the chat's logic over what it is given: the :class:`Tunnels` to the
members (:class:`WireGuardTunnels` in :func:`run`), a :class:`Rendezvous`, a screen and a
clock; :func:`run` only builds the real ones and ties them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TextIO

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
from weron.rendezvous import Rendezvous, RendezvousError
from weron.rendezvous.card import Card
from weron.rendezvous.room import Room, RoomSecrets, derive, place_of
from weron.rendezvous.via_server import SignalerRendezvous
from weron.urls import parse_url
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.device import WireGuardPeer
from weron.wireguard.ip import UdpPacket
from weron.wireguard.nat.paths import Candidate, Route
from weron.wireguard.nat.traversal import CandidatesHandler, Traversal
from weron.wireguard.nat.turn import TurnServer
from weron.wireguard.overlay import UdpOverlay

log = get_logger(__name__)
IPV6_PROBE: Final = "2001:db8::1"  # any global address: only the route to it is looked up
# Tunnels open to cards whose member has not said hello yet (its handshake may still be under
# way, through NATs or TURN): beyond this many the oldest is closed, so cards with made-up
# keys (anyone with the room's key can hand out cards) cannot pile up tunnels and probes.
MAX_SILENT_TUNNELS: Final = 64
# Our card goes out again when a tunnel stayed silent for this many timeouts (by then a member
# that will forget us has: a timeout after our last packet, at a heartbeat a third of it
# later), then after twice as long, and so on, up to MAX_REINTRODUCTION_WAIT timeouts apart.
SILENT_TIMEOUTS: Final = 2
MAX_REINTRODUCTION_WAIT: Final = 16


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
    return SignalerRendezvous.to_signaler(
        config.raddr, secrets, card, timeout=config.signaler_timeout
    )


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


def _ignore(*_event: object) -> None:
    """What the tunnels report before the chat listens: nothing is met yet, nothing to tell."""


ChatDatagramHandler = Callable[[bytes, bytes], None]  # the member's public key, the payload
MemberRouteHandler = Callable[[bytes, Route | None], None]


class Tunnels(Protocol):
    """What the chat asks of its transport: a tunnel to each member met, by public key, that
    carries chat datagrams both ways. It reports through the ``on_`` handlers the chat sets:
    a member's datagram, a change of the route to a member, new candidates of our own."""

    on_datagram: ChatDatagramHandler
    on_route: MemberRouteHandler
    on_candidates: CandidatesHandler

    def add(self, card: Card) -> None:
        """Open a tunnel to the card's member (or, open already, try its new candidates)."""

    def remove(self, public_key: bytes) -> None: ...

    def send(self, public_key: bytes, data: bytes) -> None: ...

    def route(self, public_key: bytes) -> Route | None: ...


class WireGuardTunnels:
    """The chat's tunnels: a WireGuard peer per member (under the room's pre-shared key) on
    one UDP socket, through NATs by :class:`Traversal`, chat datagrams on ``CHAT_PORT``."""

    def __init__(self, config: GonetConfig, psk: bytes) -> None:
        self._psk = psk
        self.overlay = UdpOverlay(config.private_key, self._datagram)
        self.traversal = Traversal(
            self.overlay.endpoint,
            stun=config.stun,
            turn=config.turn,
            on_route=self._route,
            on_candidates=self._candidates,
        )
        self._peers: dict[bytes, WireGuardPeer] = {}
        self.on_datagram: ChatDatagramHandler = _ignore
        self.on_route: MemberRouteHandler = _ignore
        self.on_candidates: CandidatesHandler = _ignore

    async def open(self, host: str, port: int) -> Endpoint:
        return await self.overlay.open(host, port)

    async def start(self, host: Sequence[Endpoint]) -> tuple[Candidate, ...]:
        """Our candidates (``host``: our socket's own addresses), once learnt."""
        return await self.traversal.start(host)

    def add(self, card: Card) -> None:
        peer = self.overlay.add_peer(card.public_key, psk=self._psk)
        self.traversal.add(peer, card.candidates, card.issued)
        self._peers[card.public_key] = peer

    def remove(self, public_key: bytes) -> None:
        """No more heartbeats nor handshakes toward the member."""
        peer = self._peers.pop(public_key, None)
        if peer is not None:
            self.traversal.remove(peer)
        self.overlay.remove_peer(public_key)

    def send(self, public_key: bytes, data: bytes) -> None:
        peer = self._peers.get(public_key)
        if peer is not None:
            self.overlay.sendto(data, peer, CHAT_PORT)

    def route(self, public_key: bytes) -> Route | None:
        peer = self._peers.get(public_key)
        return None if peer is None else self.traversal.route(peer)

    def _datagram(self, peer: WireGuardPeer, datagram: UdpPacket) -> None:
        if datagram.destination_port != CHAT_PORT:
            log.debug("Dropped datagram for another port", port=datagram.destination_port)
            return
        self.on_datagram(peer.public_key, datagram.payload)

    def _route(self, peer: WireGuardPeer, route: Route | None) -> None:
        self.on_route(peer.public_key, route)

    def _candidates(self, candidates: tuple[Candidate, ...]) -> None:
        self.on_candidates(candidates)

    async def close(self) -> None:
        await self.traversal.close()
        self.overlay.close()


class GonetChat:
    """The chat: who is in the room (only members whose hello came through a tunnel, hence
    whose handshake proved the room's key), what they say, what we say to them and whether
    it arrived, on the screen. Tunnels, rendezvous, screen and clock come in: the unit tests
    give fakes, :func:`run` the real ones."""

    def __init__(
        self,
        config: GonetConfig,
        tunnels: Tunnels,
        rendezvous: Rendezvous,
        screen: Screen,
        clock: Callable[[], float],
        *,
        candidates: tuple[Candidate, ...],
    ) -> None:
        self._config = config
        self._tunnels = tunnels
        self._rendezvous = rendezvous
        self._screen = screen
        self._clock = clock
        self.roster = Roster(config.private_key.public, config.name)
        self.met: set[bytes] = set()  # members whose card came: a tunnel is open to each
        # of those, not said hello yet (oldest card first): when met, or our card went out again
        self._silent: dict[bytes, float] = {}
        self._candidates = candidates  # our own, in our card
        self._reintroduction_wait = SILENT_TIMEOUTS * config.timeout
        self._next_reintroduction = -float("inf")
        self._greet: set[bytes] = set()  # members in the room whose new card came: see meet
        self.delivery = Delivery(config.timeout)
        self._changed = asyncio.Event()  # lines said or acknowledged: the delivery loop wakes
        self._settled = asyncio.Event()  # no line waits for acks
        self._settled.set()
        self._joined = False  # no name is shown as ours before the rendezvous let us in
        self._card: Card | None = None  # our newest card, while not announced yet
        self._place = place_of(config.room)  # what cards are signed for
        self._to_announce = asyncio.Event()
        tunnels.on_datagram = self.received
        tunnels.on_route = self.route_changed
        tunnels.on_candidates = self._announce

    async def converse(self, lines: asyncio.Queue[str | None]) -> None:
        """Meet the members the rendezvous brings and say the lines typed until the end of
        input; then what was said is delivered or reported before leaving is announced
        (announced as well when cancelled or failed). A rendezvous that cannot let us in,
        or whose members end, raises :class:`RendezvousError`. Every task started here has
        ended on return."""
        loops = (self._join(), self._meet(), self._beat(), self._send_due(), self._announcing())
        background = [asyncio.create_task(loop) for loop in loops]
        try:
            while (line := await next_line(lines, background)) is not None:
                self.say(line)
            await until(self._settled.wait(), background)
        finally:
            self.leave()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def join(self) -> None:
        """Progress on the prompt line until the rendezvous let us in, then our name; if it
        cannot, :class:`RendezvousError` says why (and no name is shown as ours)."""
        started = self._clock()
        joined = asyncio.ensure_future(self._rendezvous.joined())
        try:
            while not joined.done():
                self._screen.prompt = f"joining… ({round(self._clock() - started)} s) "
                await asyncio.wait({joined}, timeout=1)
        finally:
            joined.cancel()
        if not joined.cancelled() and (failure := joined.exception()) is not None:
            self._screen.prompt = ""
            if isinstance(failure, RendezvousError):
                raise failure
            log.debug("The rendezvous failed", exc_info=failure)
            reason = str(failure) or type(failure).__name__
            raise RendezvousError(f"cannot join the room: {reason}") from failure
        self._joined = True
        self.show_own_name()

    async def _join(self) -> None:
        """:meth:`join`, then stay: run as a background loop, so that a rendezvous that
        cannot let us in ends the chat as a failing loop does."""
        await self.join()
        await asyncio.Event().wait()

    def show_own_name(self) -> None:
        shown = self.roster.own_display
        if self._joined and self._screen.prompt != f"{shown}> ":
            self._screen.prompt = f"{shown}> "
            self._screen.line(f"{shown}!")

    async def _meet(self) -> None:
        """Meet the members the rendezvous brings. It brings them for as long as the chat
        lasts: if it stops, no member can find us any more, and the chat ends saying so."""
        async for card in self._rendezvous.members():
            self.meet(card)
        raise RendezvousError("the rendezvous ended: no member can meet us any more")

    def meet(self, card: Card) -> None:
        """A card from the rendezvous: a tunnel to its member, and our hello through it. A
        card without candidates, or with our own key, is no member to meet; one whose proof
        fails was written by another member in the key's name."""
        if not card.candidates or card.public_key == self._config.private_key.public:
            return
        if card.proof is not None and not card.proven(self._place):
            log.info("Ignoring a card its key did not sign (forged)", key=card.id)
            return
        self._tunnels.add(card)
        self.met.add(card.public_key)
        if card.public_key in self.roster:
            # It moved, or it restarted (same key, new socket): then our hello below goes
            # through the session it no longer holds, so we answer its next hello, which
            # comes through the new one (else it sees us only at our next heartbeat).
            self._greet.add(card.public_key)
        else:
            self._silent.pop(card.public_key, None)
            self._silent[card.public_key] = self._clock()
            if len(self._silent) > MAX_SILENT_TUNNELS:
                oldest = next(iter(self._silent))
                log.warning(
                    "Closing the tunnel to a card whose member never said hello",
                    silent=len(self._silent),
                    limit=MAX_SILENT_TUNNELS,
                )
                del self._silent[oldest]
                self.met.discard(oldest)
                self._tunnels.remove(oldest)
        for message in self._hello():
            self._tunnels.send(card.public_key, encode_chat(message))

    def _announce(self, candidates: tuple[Candidate, ...]) -> None:
        """Our candidates changed (our NAT moved us): our new card out, members reconnect."""
        self._candidates = candidates
        self._card = own_card(self._config.private_key, self._place, candidates)
        self._to_announce.set()

    def _reintroduce(self) -> None:
        """A member whose tunnel stays silent may have forgotten us: it timed
        us out while it refused our handshakes (we restarted with our clock behind the last
        handshake it took from us), and the rendezvous hands it our card once. Our card again,
        at growing intervals (a member we cannot reach stays silent for good)."""
        now = self._clock()
        silent_for = SILENT_TIMEOUTS * self._config.timeout
        if not self._silent:
            self._reintroduction_wait = silent_for
            return
        if now < self._next_reintroduction:
            return
        if all(now - since < silent_for for since in self._silent.values()):
            return
        log.info("Members silent since their cards came: announcing our card again")
        self._reintroduction_wait = min(
            2 * self._reintroduction_wait, MAX_REINTRODUCTION_WAIT * self._config.timeout
        )
        self._next_reintroduction = now + self._reintroduction_wait
        self._announce(self._candidates)

    async def _announcing(self) -> None:
        """Our cards out one at a time, newest only: an older card never goes out after a
        newer one, and no announcement outlives the chat (it is one of its loops)."""
        while True:
            await self._to_announce.wait()
            self._to_announce.clear()
            card, self._card = self._card, None
            if card is None:
                continue
            try:
                await self._rendezvous.announce(card)
            except Exception as exc:  # the chat goes on: the next change announces again
                log.warning("Could not announce our new candidates", reason=str(exc))

    def _hello(self) -> tuple[ChatMessage, ...]:
        return Hello(self._config.name), Version(VERSION)

    def route_changed(self, public_key: bytes, route: Route | None) -> None:
        if route is not None and public_key in self.roster:
            self._screen.line(f"~{self.roster.display(public_key)} {route}")

    def say(self, text: str) -> None:
        if not text:
            return
        if not is_printable_ascii(text) or len(text) > MAX_TEXT:
            self._screen.line(f"!not sent: only printable ASCII, at most {MAX_TEXT} characters")
            return
        sends = self.delivery.say(text, self.met, self._clock())
        if sends is None:
            self._screen.line(f"!not sent: {self.delivery.waiting} lines still wait for acks")
            return
        self._send(sends)
        self._delivery_changed()

    async def _send_due(self) -> None:
        while True:
            deadline = self.send_due()
            self._changed.clear()
            delay = None if deadline is None else deadline - self._clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)

    def send_due(self) -> float | None:
        """Send the copies due, report the lines given up on; when to come back."""
        sends, failures = self.delivery.tick(self._clock())
        self._send(sends)
        for failure in failures:
            self._failed(self.roster.display(failure.member), failure)
        self._delivery_changed()
        return self.delivery.next_deadline()

    def _delivery_changed(self) -> None:
        self._changed.set()
        if self.delivery.waiting:
            self._settled.clear()
        else:
            self._settled.set()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._config.timeout / 3)
            self.heartbeat()

    def heartbeat(self) -> None:
        """Our hello to every member met; members silent for the timeout have left."""
        for message in self._hello():
            self._broadcast(encode_chat(message))
        before = self.roster.displays()
        for key, shown in self.roster.expire(self._clock(), self._config.timeout):
            self._forget(key, shown)
        self._show_renames(before)
        self._reintroduce()

    def leave(self) -> None:
        self._broadcast(encode_chat(Bye()))

    def _broadcast(self, data: bytes) -> None:
        for key in self.met:
            self._tunnels.send(key, data)

    def _send(self, sends: list[Send]) -> None:
        for send in sends:
            if send.to in self.met:
                self._tunnels.send(send.to, encode_chat(send.message))

    def _failed(self, shown: str, failure: Failure) -> None:
        self._screen.line(f"!not delivered to {shown}: {escape(failure.text)}")

    def received(self, key: bytes, payload: bytes) -> None:
        """A datagram through a member's tunnel: ``key`` is the one its handshake proved."""
        try:
            message = decode_chat(payload)
        except ChatMessageError as exc:
            log.debug("Dropped malformed chat message", reason=str(exc))
            return
        if isinstance(message, Hello):
            self._silent.pop(key, None)
            if key in self._greet:
                self._greet.discard(key)
                for reply in self._hello():
                    self._tunnels.send(key, encode_chat(reply))
            before = self.roster.displays()
            if self.roster.hello(key, message.name, self._clock()):
                self._screen.line(f"+{self.roster.display(key)}")
                self.route_changed(key, self._tunnels.route(key))
            self._show_renames(before)
        elif key not in self.roster:
            log.debug("Dropped chat message from a member that did not say hello")
        elif isinstance(message, Version):
            self.delivery.version(key, message.number)
        elif isinstance(message, Line | Posted):
            self.roster.seen(key, self._clock())
            show = True
            if isinstance(message, Posted):
                ack, show = self.delivery.received(key, message)
                self._send([ack])
            if show:
                self._screen.line(f"{self.roster.display(key)}: {escape(message.text)}")
        elif isinstance(message, Ack):
            self.roster.seen(key, self._clock())
            self.delivery.acked(key, message, self._clock())
            self._delivery_changed()
        else:
            before = self.roster.displays()
            shown = self.roster.leave(key)
            if shown is not None:
                self._forget(key, shown)
                self._show_renames(before)

    def _show_renames(self, before: dict[bytes, str]) -> None:
        """Members shown under another name than ``before`` (a member said another name, or
        a name stopped or started being shared): ``*old is now new``; ours on the prompt."""
        for key, shown in self.roster.displays().items():
            if before.get(key, shown) != shown:
                self._screen.line(f"*{before[key]} is now {shown}")
        self.show_own_name()

    def _forget(self, key: bytes, shown: str) -> None:
        """A member left: said, with the lines it did not acknowledge; its tunnel closed (if
        it comes back, the rendezvous hands us its card again)."""
        self._screen.line(f"-{shown}")
        for failure in self.delivery.forget(key):
            self._failed(shown, failure)
        self._delivery_changed()
        self.met.discard(key)
        self._silent.pop(key, None)
        self._greet.discard(key)
        self._tunnels.remove(key)


def own_card(key: PrivateKey, place: bytes, candidates: tuple[Candidate, ...]) -> Card:
    """Our card, signed for the room (``place``) now."""
    return Card(key.public, candidates).signed(key, place, time.time_ns() // 1_000_000)


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
        tunnels = WireGuardTunnels(config, secrets.psk)
        bound = await tunnels.open(config.host, config.port)
        rendezvous: Rendezvous | None = None
        try:
            host = await asyncio.to_thread(host_endpoints, bound, _meeting_hosts(config))
            candidates = await tunnels.start(host)
            card = own_card(config.private_key, secrets.place, candidates)
            rendezvous = _rendezvous(config, secrets, card)
            log.info("Joining room", candidates=[c.encode() for c in candidates])
            screen.line("." + ("dht" if config.dht else redact_url(config.raddr)))
            loop = asyncio.get_running_loop()
            chat = GonetChat(config, tunnels, rendezvous, screen, loop.time, candidates=candidates)
            await chat.converse(lines)
        finally:
            if rendezvous is not None:
                await rendezvous.close()
            await tunnels.close()
