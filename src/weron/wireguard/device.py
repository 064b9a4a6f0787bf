"""One WireGuard identity and its peers, without I/O: datagrams and ``now`` go in, datagrams
to send and decrypted packets come out (WireGuard paper §5-§6).

Everything a real endpoint needs is here — session index tables, the current/previous/next
keypairs, replay windows, staged packets, rekey and reject limits, keepalives, handshake
retransmission, cookies under load — so two devices can be run against each other in tests
by handing datagrams across and moving ``now`` forward.

Timers are deadlines on each peer, set by helpers named for the event that arms them (as
wireguard-go's ``timersDataSent``, ``timersHandshakeComplete``: ``_data_sent``,
``_handshake_initiated``...). :meth:`WireGuardDevice.next_deadline` says when :meth:`tick` next
has work, so an endpoint arms one timer for it instead of polling (as aioquic's
``get_timer()``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from weron.log import get_logger
from weron.net.endpoints import Endpoint
from weron.wireguard import noise
from weron.wireguard.cookie import MacChecker, MacGenerator
from weron.wireguard.crypto import KEY_SIZE, DecryptError, PrivateKey, tai64n
from weron.wireguard.messages import (
    COOKIE_REPLY,
    INITIATION,
    INITIATION_MAC1,
    RESPONSE,
    RESPONSE_MAC1,
    TRANSPORT,
    TRANSPORT_HEADER,
    TRANSPORT_HEADER_SIZE,
    TRANSPORT_MIN_SIZE,
    WireGuardMessageError,
    message_type,
    parse_cookie_reply,
    parse_initiation,
    parse_response,
)
from weron.wireguard.replay import REJECT_AFTER_MESSAGES, ReplayWindow

log = get_logger(__name__)

Datagram = tuple[bytes, Endpoint]
MAX_STAGED: Final = 128
INITIATION_RATE: Final = 1 / 50  # at most one initiation per peer per 20 ms is consumed
UNDER_LOAD_INITIATIONS: Final = 64  # initiations in one second that switch cookies on
_PADDING: Final = 16
_ZERO_PADDING: Final = bytes(_PADDING)
_NO_TIMESTAMP: Final = bytes(12)
_NONCE_PREFIX: Final = b"\x00\x00\x00\x00"
_TRANSPORT_WORD: Final = TRANSPORT  # type byte + three zero bytes, little-endian


@dataclass(frozen=True, slots=True)
class Timers:
    """The protocol's time and message limits (paper §6.1); tests and the interop lab shorten
    them to see rekeys happen."""

    rekey_after_messages: int = 1 << 60
    reject_after_messages: int = REJECT_AFTER_MESSAGES
    rekey_after_time: float = 120.0
    reject_after_time: float = 180.0
    rekey_attempt_time: float = 90.0
    rekey_timeout: float = 5.0
    keepalive_timeout: float = 10.0


class Keypair:
    """Transport keys of one completed handshake, with the send counter and replay window."""

    __slots__ = (
        "created",
        "initiator",
        "local_index",
        "peer",
        "receive",
        "remote_index",
        "replay",
        "send",
        "send_counter",
    )

    def __init__(
        self,
        peer: WireGuardPeer,
        keys: noise.TransportKeys,
        local_index: int,
        remote_index: int,
        initiator: bool,
        now: float,
    ) -> None:
        self.peer = peer
        self.send = ChaCha20Poly1305(keys.send)
        self.receive = ChaCha20Poly1305(keys.receive)
        self.local_index = local_index
        self.remote_index = remote_index
        self.initiator = initiator
        self.created = now
        self.send_counter = 0
        self.replay = ReplayWindow()


class WireGuardPeer:
    """A remote static key we talk to, its endpoint, sessions and timers (WireGuard's notion
    of a peer, not the WebRTC side's ``weron.peers.Peer``)."""

    def __init__(
        self,
        public_key: bytes,
        static_static: bytes | None,
        psk: bytes,
        endpoint: Endpoint | None,
        persistent_keepalive: float,
    ) -> None:
        self.public_key = public_key
        self.static_static = static_static
        self.psk = psk
        self.endpoint = endpoint
        self.persistent_keepalive = persistent_keepalive
        self.macs = MacGenerator(public_key)
        self.handshake: noise.HandshakeState | None = None
        self.handshake_index = 0
        self.current: Keypair | None = None
        self.previous: Keypair | None = None
        self.next: Keypair | None = None
        self.last_timestamp = _NO_TIMESTAMP
        self.last_initiation_consumed = -float("inf")
        self.staged: deque[bytes] = deque(maxlen=MAX_STAGED)
        self.initiation: bytes | None = None  # the initiation in flight, as sent
        # Timers: absolute deadlines in `now` units, None when not armed.
        self.attempt_started: float | None = None
        self.last_initiation_sent = -float("inf")
        self.retransmit_at: float | None = None
        self.keepalive_at: float | None = None
        self.new_handshake_at: float | None = None
        self.last_handshake: float | None = None
        self.last_sent = -float("inf")
        self.last_received = -float("inf")
        # Counters for status output and benchmarks.
        self.handshakes = 0
        self.rx_bytes = 0
        self.tx_bytes = 0

    @property
    def has_session(self) -> bool:
        return self.current is not None


class Receipt:
    """What one received datagram did: the peer it authenticated as, a decrypted packet
    (padding included; empty keepalives give none), datagrams to send, or why it was dropped."""

    __slots__ = ("packet", "peer", "rejected", "replies")

    def __init__(
        self,
        peer: WireGuardPeer | None = None,
        packet: bytes | None = None,
        replies: list[Datagram] | None = None,
        rejected: str | None = None,
    ) -> None:
        self.peer = peer
        self.packet = packet
        self.replies = replies if replies is not None else []
        self.rejected = rejected


def _rejected(reason: str) -> Receipt:
    return Receipt(rejected=reason)


def padded_size(size: int, mtu: int) -> int:
    """Plaintext length after WireGuard's padding to 16 bytes, never beyond the MTU."""
    last = size % mtu if size > mtu else size
    padded = min((last + _PADDING - 1) & ~(_PADDING - 1), mtu)
    return size + padded - last


class WireGuardDevice:
    """One static key; peers by public key; session indices; cookies (WireGuard's device in
    wireguard-go's sense, not a TUN/TAP ``weron.net.device.Device``)."""

    def __init__(
        self,
        private_key: PrivateKey,
        *,
        timers: Timers | None = None,
        timestamp: Callable[[], bytes] = tai64n,
        random: Callable[[int], bytes] = os.urandom,
        mtu: int = 1420,
    ) -> None:
        self.static = private_key
        self.public_key = private_key.public
        self.timers = timers or Timers()
        self.mtu = mtu
        self.under_load: bool | None = None  # None: decided from the initiation rate
        self._timestamp = timestamp
        self._random = random
        self._checker = MacChecker(self.public_key, random)
        self._peers: dict[bytes, WireGuardPeer] = {}
        self._static_static: dict[bytes, bytes] = {}
        self._handshakes: dict[int, WireGuardPeer] = {}
        self._keypairs: dict[int, Keypair] = {}
        self._recent_initiations: deque[float] = deque()
        self._next_deadline: float | None = None  # never later than the earliest peer deadline

    # -- peers -----------------------------------------------------------------------------

    def add_peer(
        self,
        public_key: bytes,
        *,
        psk: bytes | None = None,
        endpoint: Endpoint | None = None,
        persistent_keepalive: float = 0.0,
    ) -> WireGuardPeer:
        """Add (or return the existing) peer; a low-order key is kept but never handshakes."""
        if len(public_key) != KEY_SIZE or (psk is not None and len(psk) != KEY_SIZE):
            raise ValueError("public keys and pre-shared keys are 32 bytes")
        existing = self._peers.get(public_key)
        if existing is not None:
            return existing
        try:
            static_static: bytes | None = self.static.exchange(public_key)
        except ValueError:
            static_static = None
            log.warning("Peer public key is of low order: it can never complete a handshake")
        peer = WireGuardPeer(
            public_key, static_static, psk or noise.NO_PSK, endpoint, persistent_keepalive
        )
        self._peers[public_key] = peer
        if static_static is not None:
            self._static_static[public_key] = static_static
        return peer

    def peer(self, public_key: bytes) -> WireGuardPeer | None:
        return self._peers.get(public_key)

    @property
    def peers(self) -> list[WireGuardPeer]:
        return list(self._peers.values())

    def remove_peer(self, public_key: bytes) -> None:
        peer = self._peers.pop(public_key, None)
        if peer is None:
            return
        self._static_static.pop(public_key, None)
        self._clear_sessions(peer)

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data: bytes, source: Endpoint, now: float) -> Receipt:
        """Handle one datagram from ``source``; never raises for bad input."""
        kind = message_type(data)
        try:
            if kind == TRANSPORT:
                return self._receive_transport(data, source, now)
            if kind == INITIATION:
                return self._receive_initiation(data, source, now)
            if kind == RESPONSE:
                return self._receive_response(data, source, now)
            if kind == COOKIE_REPLY:
                return self._receive_cookie_reply(data, now)
        except WireGuardMessageError as exc:
            return _rejected(str(exc))
        return _rejected(f"not a WireGuard message ({len(data)} bytes)")

    def _receive_transport(self, data: bytes, source: Endpoint, now: float) -> Receipt:
        if len(data) < TRANSPORT_MIN_SIZE:
            return _rejected(f"transport message too short: {len(data)} bytes")
        _, receiver, counter = TRANSPORT_HEADER.unpack_from(data)
        keypair = self._keypairs.get(receiver)
        if keypair is None:
            return _rejected("transport message for an unknown session index")
        if now - keypair.created >= self.timers.reject_after_time:
            return _rejected("transport message for an expired session")
        if not keypair.replay.acceptable(counter):
            return _rejected("counter replayed or outside the window")
        try:
            packet = keypair.receive.decrypt(
                _NONCE_PREFIX + data[8:16], data[TRANSPORT_HEADER_SIZE:], None
            )
        except InvalidTag:
            return _rejected("transport message does not authenticate")
        keypair.replay.mark(counter)
        peer = keypair.peer
        peer.endpoint = source
        peer.rx_bytes += len(data)
        self._authenticated_received(peer, now)
        replies: list[Datagram] = []
        if keypair is peer.next:
            self._confirm_next(peer, replies, now)
        if packet and peer.keepalive_at is None:  # (checked here too: the hot path)
            self._data_received(peer, now)
        if keypair.initiator:
            self._keep_key_fresh_receiving(keypair, now, replies)
        return Receipt(peer, packet or None, replies)

    def _confirm_next(self, peer: WireGuardPeer, replies: list[Datagram], now: float) -> None:
        """The initiator used the keypair we answered with: it becomes current."""
        self._drop_keypair(peer.previous)
        peer.previous = peer.current
        peer.current = peer.next
        peer.next = None
        self._flush_staged(peer, replies, now)
        self._new_current(peer)

    def _receive_initiation(self, data: bytes, source: Endpoint, now: float) -> Receipt:
        message = parse_initiation(data)
        if not self._checker.mac1_valid(data, INITIATION_MAC1):
            return _rejected("initiation with an invalid MAC1")
        self._recent_initiations.append(now)
        if self._is_under_load(now) and not self._checker.mac2_valid(
            data, INITIATION_MAC1, source, now
        ):
            cookie = self._checker.cookie_reply(data, INITIATION_MAC1, message.sender, source, now)
            return Receipt(replies=[(cookie.pack(), source)], rejected="under load: cookie sent")
        try:
            consumed = noise.consume_initiation(self.static, message, self._static_static)
        except DecryptError:
            return _rejected("initiation does not decrypt")
        except KeyError:
            return _rejected("initiation from an unknown public key")
        except ValueError:
            return _rejected("initiation with a low-order ephemeral key")
        peer = self._peers[consumed.peer_public_key]
        if consumed.timestamp <= peer.last_timestamp:
            return _rejected("initiation replayed (timestamp not newer than the last one)")
        if now - peer.last_initiation_consumed < INITIATION_RATE:
            return _rejected("initiation flood (too soon after the previous one)")
        peer.last_timestamp = consumed.timestamp
        peer.last_initiation_consumed = now
        peer.endpoint = source
        peer.last_received = now
        ephemeral = PrivateKey.generate()
        local_index = self._new_index()
        try:
            response, keys = noise.create_response(
                consumed.state, peer.public_key, peer.psk, ephemeral, local_index, message.sender
            )
        except ValueError:
            return _rejected("initiation with a low-order ephemeral key")
        keypair = Keypair(peer, keys, local_index, message.sender, initiator=False, now=now)
        self._keypairs[local_index] = keypair
        self._drop_keypair(peer.next)
        self._drop_keypair(peer.previous)
        peer.previous = None
        peer.next = keypair
        self._session_derived(peer, now)
        reply = peer.macs.add_macs(response.pack(), now)
        self._authenticated_sent(peer, now)
        return Receipt(peer, None, [(reply, source)])

    def _receive_response(self, data: bytes, source: Endpoint, now: float) -> Receipt:
        message = parse_response(data)
        if not self._checker.mac1_valid(data, RESPONSE_MAC1):
            return _rejected("response with an invalid MAC1")
        if self._is_under_load(now) and not self._checker.mac2_valid(
            data, RESPONSE_MAC1, source, now
        ):
            cookie = self._checker.cookie_reply(data, RESPONSE_MAC1, message.sender, source, now)
            return Receipt(replies=[(cookie.pack(), source)], rejected="under load: cookie sent")
        peer = self._handshakes.get(message.receiver)
        if peer is None or peer.handshake is None:
            return _rejected("response for no initiation of ours")
        try:
            keys = noise.consume_response(peer.handshake, self.static, peer.psk, message)
        except DecryptError:
            return _rejected("response does not decrypt (wrong peer or pre-shared key)")
        except ValueError:
            return _rejected("response with a low-order ephemeral key")
        local_index = message.receiver
        del self._handshakes[local_index]
        peer.handshake = None
        peer.initiation = None
        keypair = Keypair(peer, keys, local_index, message.sender, initiator=True, now=now)
        self._keypairs[local_index] = keypair
        if peer.next is not None:
            self._drop_keypair(peer.previous)
            self._drop_keypair(peer.current)
            peer.previous = peer.next
            peer.next = None
        else:
            self._drop_keypair(peer.previous)
            peer.previous = peer.current
        peer.current = keypair
        peer.endpoint = source
        self._authenticated_received(peer, now)
        self._handshake_complete(peer)
        self._session_derived(peer, now)
        replies: list[Datagram] = []
        if peer.staged:
            self._flush_staged(peer, replies, now)
        else:
            self._keepalive(peer, replies, now)  # confirms the session to the responder
        self._new_current(peer)
        return Receipt(peer, None, replies)

    def _receive_cookie_reply(self, data: bytes, now: float) -> Receipt:
        reply = parse_cookie_reply(data)
        keypair = self._keypairs.get(reply.receiver)
        peer = keypair.peer if keypair is not None else self._handshakes.get(reply.receiver)
        if peer is None:
            return _rejected("cookie reply for an unknown session index")
        try:
            peer.macs.consume_cookie_reply(reply, now)
        except DecryptError:
            return _rejected("cookie reply does not decrypt")
        return Receipt(peer)

    def _is_under_load(self, now: float) -> bool:
        if self.under_load is not None:
            return self.under_load
        recent = self._recent_initiations
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        return len(recent) > UNDER_LOAD_INITIATIONS

    # -- sending ---------------------------------------------------------------------------

    def send(self, peer: WireGuardPeer, packet: bytes, now: float) -> list[Datagram]:
        """Datagrams that carry ``packet`` to ``peer`` (plus a handshake when one is due);
        without a usable session the packet is staged and a handshake started."""
        out: list[Datagram] = []
        keypair = peer.current
        if keypair is None or peer.endpoint is None or not self._usable(keypair, now):
            peer.staged.append(packet)
            self._initiate(peer, now, out)
            return out
        out.append((self._seal(keypair, packet, now), peer.endpoint))
        self._data_sent(peer, now)
        self._keep_key_fresh_sending(keypair, now, out)
        return out

    def send_many(
        self, peer: WireGuardPeer, packets: Sequence[bytes], now: float
    ) -> list[Datagram]:
        """Like :meth:`send` for a batch: the session checks and timer updates once, then
        only header, encryption and append per packet (the hot path of bulk traffic)."""
        keypair = peer.current
        endpoint = peer.endpoint
        if (
            keypair is None
            or endpoint is None
            or not self._usable(keypair, now)
            or keypair.send_counter + len(packets) >= self.timers.reject_after_messages
        ):
            out: list[Datagram] = []
            for packet in packets:
                out.extend(self.send(peer, packet, now))
            return out
        mtu = self.mtu
        encrypt = keypair.send.encrypt
        pack = TRANSPORT_HEADER.pack
        remote = keypair.remote_index
        counter = keypair.send_counter
        out = []
        sent_bytes = 0
        for packet in packets:
            size = len(packet)
            plaintext = packet
            if size & 15:  # pad to 16 bytes; only packets near the MTU need padded_size()
                padding = -size & 15 if size + 15 < mtu else padded_size(size, mtu) - size
                plaintext += _ZERO_PADDING[:padding]
            header = pack(_TRANSPORT_WORD, remote, counter)
            data = header + encrypt(_NONCE_PREFIX + header[8:], plaintext, None)
            sent_bytes += len(data)
            out.append((data, endpoint))
            counter += 1
        keypair.send_counter = counter
        peer.tx_bytes += sent_bytes
        self._authenticated_sent(peer, now)
        self._data_sent(peer, now)
        self._keep_key_fresh_sending(keypair, now, out)
        return out

    def initiate(self, peer: WireGuardPeer, now: float) -> list[Datagram]:
        """Start a handshake now (unless one was sent less than REKEY_TIMEOUT ago)."""
        out: list[Datagram] = []
        self._initiate(peer, now, out)
        return out

    def probe(self, peer: WireGuardPeer, now: float) -> bytes | None:
        """A message to send along a candidate path to learn whether it works (hole punching):
        with a session, an empty transport message (the peer roams to the path it arrives
        on); without, the initiation in flight (started if none is), so the handshake completes
        on the first path that answers. None when the peer can never handshake."""
        keypair = peer.current
        if keypair is not None and self._usable(keypair, now):
            return self._encrypt(keypair, b"")
        if peer.handshake is None or peer.initiation is None:
            self._initiate(peer, now, [])
        return peer.initiation if peer.handshake is not None else None

    def _usable(self, keypair: Keypair, now: float) -> bool:
        return (
            now - keypair.created < self.timers.reject_after_time
            and keypair.send_counter < self.timers.reject_after_messages
        )

    def _encrypt(self, keypair: Keypair, packet: bytes) -> bytes:
        """A transport message, without touching the peer's timers."""
        size = len(packet)
        padding = padded_size(size, self.mtu) - size
        if padding:
            packet += _ZERO_PADDING[:padding]
        counter = keypair.send_counter
        keypair.send_counter = counter + 1
        header = TRANSPORT_HEADER.pack(_TRANSPORT_WORD, keypair.remote_index, counter)
        return header + keypair.send.encrypt(_NONCE_PREFIX + header[8:], packet, None)

    def _seal(self, keypair: Keypair, packet: bytes, now: float) -> bytes:
        data = self._encrypt(keypair, packet)
        peer = keypair.peer
        peer.tx_bytes += len(data)
        self._authenticated_sent(peer, now)
        return data

    def _keepalive(self, peer: WireGuardPeer, out: list[Datagram], now: float) -> None:
        keypair = peer.current
        if keypair is not None and peer.endpoint is not None and self._usable(keypair, now):
            out.append((self._seal(keypair, b"", now), peer.endpoint))

    def _flush_staged(self, peer: WireGuardPeer, out: list[Datagram], now: float) -> None:
        staged = list(peer.staged)
        peer.staged.clear()
        for packet in staged:
            out.extend(self.send(peer, packet, now))

    def _initiate(
        self, peer: WireGuardPeer, now: float, out: list[Datagram], *, retry: bool = False
    ) -> None:
        if peer.endpoint is None or peer.static_static is None:
            return
        if not retry and now - peer.last_initiation_sent < self.timers.rekey_timeout:
            return
        if peer.handshake is not None:
            self._handshakes.pop(peer.handshake_index, None)
        local_index = self._new_index()
        message, state = noise.create_initiation(
            self.static,
            peer.public_key,
            peer.static_static,
            PrivateKey.generate(),
            local_index,
            self._timestamp(),
        )
        peer.handshake = state
        peer.handshake_index = local_index
        self._handshakes[local_index] = peer
        self._handshake_initiated(peer, now)
        self._authenticated_sent(peer, now)
        peer.initiation = peer.macs.add_macs(message.pack(), now)
        out.append((peer.initiation, peer.endpoint))

    # -- timers ----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work, in ``now`` units; None while no timer is armed.

        Never later than the earliest deadline, but it may be earlier: a timer stopped since
        the last tick (an answered handshake, a keepalive that data made unnecessary) leaves
        it in place, and that wake-up finds nothing due. Every tick computes it exactly."""
        return self._next_deadline

    def set_persistent_keepalive(self, peer: WireGuardPeer, interval: float) -> None:
        """Send a keepalive whenever ``peer`` heard nothing from us for ``interval`` (0: never),
        so that NAT mappings stay open and silence means the path is lost."""
        peer.persistent_keepalive = interval
        self._new_current(peer)

    def tick(self, now: float) -> list[Datagram]:
        """Run every timer that is due at ``now``: handshake retransmission and give-up,
        passive and persistent keepalives, handshakes after silence, key erasure."""
        out: list[Datagram] = []
        timers = self.timers
        earliest: float | None = None
        for peer in self._peers.values():
            if peer.retransmit_at is not None and now >= peer.retransmit_at:
                started = peer.attempt_started if peer.attempt_started is not None else now
                if now - started >= timers.rekey_attempt_time:
                    log.info("Handshake did not complete, giving up", attempt_s=now - started)
                    self._give_up(peer)
                else:
                    self._initiate(peer, now, out, retry=True)
            if peer.keepalive_at is not None and now >= peer.keepalive_at:
                peer.keepalive_at = None
                self._keepalive(peer, out, now)
            if peer.new_handshake_at is not None and now >= peer.new_handshake_at:
                peer.new_handshake_at = None
                self._initiate(peer, now, out)
            if (
                peer.persistent_keepalive > 0
                and peer.current is not None
                and now - peer.last_sent >= peer.persistent_keepalive
            ):
                self._keepalive(peer, out, now)
            if (
                peer.last_handshake is not None
                and now - peer.last_handshake >= 3 * timers.reject_after_time
            ):
                log.debug("Erasing the keys of a silent peer")
                self._clear_sessions(peer)
            deadline = self._peer_deadline(peer, now)
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        self._next_deadline = earliest
        return out

    def _peer_deadline(self, peer: WireGuardPeer, now: float) -> float | None:
        """The earliest of ``peer``'s timers, all later than ``now`` right after a tick (a
        persistent keepalive counts only while a session can carry it, or an expired session
        would make it due again at once)."""
        armed = (peer.retransmit_at, peer.keepalive_at, peer.new_handshake_at)
        deadlines = [at for at in armed if at is not None]
        current = peer.current
        if (
            peer.persistent_keepalive > 0
            and current is not None
            and peer.endpoint is not None
            and self._usable(current, now)
        ):
            deadlines.append(peer.last_sent + peer.persistent_keepalive)
        if peer.last_handshake is not None:
            deadlines.append(peer.last_handshake + 3 * self.timers.reject_after_time)
        return min(deadlines, default=None)

    def _arm(self, deadline: float) -> None:
        if self._next_deadline is None or deadline < self._next_deadline:
            self._next_deadline = deadline

    # The events that set timers, as wireguard-go names them (timers.go).

    def _data_sent(self, peer: WireGuardPeer, now: float) -> None:
        """Data went out: without an answer within KEEPALIVE + REKEY_TIMEOUT, handshake anew."""
        if peer.new_handshake_at is None:
            peer.new_handshake_at = now + self.timers.keepalive_timeout + self.timers.rekey_timeout
            self._arm(peer.new_handshake_at)

    def _data_received(self, peer: WireGuardPeer, now: float) -> None:
        """Data came in: unless we send something first, a keepalive is owed KEEPALIVE later."""
        if peer.keepalive_at is None:
            peer.keepalive_at = now + self.timers.keepalive_timeout
            self._arm(peer.keepalive_at)

    def _authenticated_sent(self, peer: WireGuardPeer, now: float) -> None:
        """Any authenticated packet sent: no passive keepalive is owed any more."""
        peer.last_sent = now
        peer.keepalive_at = None

    def _authenticated_received(self, peer: WireGuardPeer, now: float) -> None:
        """A transport message or handshake response authenticated: the peer is alive."""
        peer.last_received = now
        peer.new_handshake_at = None

    def _handshake_initiated(self, peer: WireGuardPeer, now: float) -> None:
        """An initiation went out: send it again after REKEY_TIMEOUT (plus jitter) unless
        answered, until REKEY_ATTEMPT_TIME after the first one."""
        if peer.attempt_started is None:
            peer.attempt_started = now
        peer.last_initiation_sent = now
        jitter = int.from_bytes(self._random(2), "little") % 334 / 1000
        peer.retransmit_at = now + self.timers.rekey_timeout + jitter
        self._arm(peer.retransmit_at)

    def _handshake_complete(self, peer: WireGuardPeer) -> None:
        """Our initiation was answered: no more retransmissions of it."""
        peer.retransmit_at = None
        peer.attempt_started = None

    def _session_derived(self, peer: WireGuardPeer, now: float) -> None:
        """New keys, as initiator or responder: erase them after 3 × REJECT_AFTER_TIME of no
        newer handshake."""
        peer.last_handshake = now
        peer.handshakes += 1
        self._arm(now + 3 * self.timers.reject_after_time)

    def _new_current(self, peer: WireGuardPeer) -> None:
        """A session can carry keepalives now: the persistent keepalive counts from our last
        packet."""
        if peer.persistent_keepalive > 0 and peer.current is not None:
            self._arm(peer.last_sent + peer.persistent_keepalive)

    def _keep_key_fresh_sending(self, keypair: Keypair, now: float, out: list[Datagram]) -> None:
        """After sending: keys past REKEY_AFTER_TIME (we initiated them) or REKEY_AFTER_MESSAGES
        get replaced by a new handshake."""
        if (
            keypair.initiator and now - keypair.created >= self.timers.rekey_after_time
        ) or keypair.send_counter >= self.timers.rekey_after_messages:
            self._initiate(keypair.peer, now, out)

    def _keep_key_fresh_receiving(self, keypair: Keypair, now: float, out: list[Datagram]) -> None:
        """After receiving on keys we initiated: close to REJECT_AFTER_TIME they get replaced
        now, while the peer still answers on them."""
        timers = self.timers
        peer = keypair.peer
        if (
            keypair is peer.current
            and now - keypair.created
            >= timers.reject_after_time - timers.keepalive_timeout - timers.rekey_timeout
            and peer.handshake is None
        ):
            self._initiate(peer, now, out)

    def _give_up(self, peer: WireGuardPeer) -> None:
        if peer.handshake is not None:
            self._handshakes.pop(peer.handshake_index, None)
        peer.handshake = None
        peer.initiation = None
        peer.retransmit_at = None
        peer.attempt_started = None
        peer.new_handshake_at = None
        peer.staged.clear()

    def _clear_sessions(self, peer: WireGuardPeer) -> None:
        self._give_up(peer)
        for keypair in (peer.current, peer.previous, peer.next):
            self._drop_keypair(keypair)
        peer.current = peer.previous = peer.next = None
        peer.keepalive_at = None
        peer.last_handshake = None

    def _drop_keypair(self, keypair: Keypair | None) -> None:
        if keypair is not None and self._keypairs.get(keypair.local_index) is keypair:
            del self._keypairs[keypair.local_index]

    def _new_index(self) -> int:
        while True:
            index = int.from_bytes(self._random(4), "little")
            if index and index not in self._keypairs and index not in self._handshakes:
                return index
