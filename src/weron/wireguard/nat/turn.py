"""A TURN client (RFC 8656) on the shared WireGuard socket: one UDP allocation, channels to
peers, ChannelData framing; STUN messages and long-term credentials are aioice's.

Sending never waits: a datagram for a peer without a channel starts the ChannelBind (which
also installs the permission) and is dropped — WireGuard and the hole puncher resend anyway.
A maintenance task refreshes the allocation and re-binds channels before their permissions
expire; when the allocation is lost (refresh refused, e.g. after our NAT gave us a new port),
``on_lost`` is called so the owner can allocate again.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aioice import stun
from aioice.turn import UDP_TRANSPORT, make_integrity_key

from weron.log import get_logger
from weron.net.endpoints import Endpoint
from weron.wireguard.nat.stun import Send, StunAgent, endpoint_of

log = get_logger(__name__)

LIFETIME: Final = 600
PERMISSION_REFRESH: Final = 240.0  # permissions last 300 s; ChannelBind refreshes them
BIND_RETRY: Final = 2.0
FIRST_CHANNEL: Final = 0x4000
LAST_CHANNEL: Final = 0x4FFF
_CHANNEL_HEADER: Final = struct.Struct("!HH")


class TurnError(Exception):
    """The server refused or did not answer."""


@dataclass(frozen=True, slots=True)
class TurnServer:
    host: str
    port: int
    username: str
    password: str

    @classmethod
    def parse(cls, text: str) -> TurnServer:
        """``user:password@host:port`` (a ``turn:`` before the host is accepted)."""
        credentials, at, address = text.rpartition("@")
        username, colon, password = credentials.partition(":")
        address = address.removeprefix("turn:")
        host, _, port = address.rpartition(":")
        if not at or not colon or not username or not host or not port.isdigit():
            raise ValueError("expected USER:PASSWORD@HOST:PORT")
        if not 0 < int(port) < 65536:
            raise ValueError(f"port out of range: {port}")
        return cls(host.strip("[]"), int(port), username, password)

    def __repr__(self) -> str:  # never print the password
        return f"TurnServer({self.host}:{self.port}, user={self.username!r})"


def is_channel_data(data: bytes) -> bool:
    return len(data) >= 4 and 0x40 <= data[0] <= 0x4F


class TurnClient:
    """One allocation; ``send`` to peers through it, ``unwrap`` what it relays to us."""

    def __init__(
        self,
        agent: StunAgent,
        send: Send,
        server: Endpoint,
        username: str,
        password: str,
        *,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.server = server
        self.relayed: Endpoint | None = None
        self.mapped: Endpoint | None = None
        self._agent = agent
        self._send = send
        self._username = username
        self._password = password
        self._on_lost = on_lost
        self._realm: str | None = None
        self._nonce: bytes | None = None
        self._key: bytes | None = None
        self._channels: dict[Endpoint, int] = {}
        self._numbers: dict[Endpoint, int] = {}
        self._peers: dict[int, Endpoint] = {}
        self._bound_at: dict[int, float] = {}
        self._pending: dict[Endpoint, asyncio.Task[None]] = {}
        self._failed_at: dict[Endpoint, float] = {}
        self._next_channel = FIRST_CHANNEL
        self._maintenance: asyncio.Task[None] | None = None

    @property
    def allocated(self) -> bool:
        return self.relayed is not None

    async def allocate(self) -> Endpoint:
        """Create the allocation; our relayed address. TurnError when refused."""
        request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
        request.attributes["LIFETIME"] = LIFETIME
        request.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        response = await self._request(request)
        relayed = endpoint_of(response.attributes.get("XOR-RELAYED-ADDRESS"))
        if relayed is None:
            raise TurnError("allocation response without a relayed address")
        self.relayed = relayed
        self.mapped = endpoint_of(response.attributes.get("XOR-MAPPED-ADDRESS"))
        lifetime = response.attributes.get("LIFETIME", LIFETIME)
        log.info("TURN allocation created", relayed=f"{relayed[0]}:{relayed[1]}", lifetime=lifetime)
        self._maintenance = asyncio.create_task(self._maintain(float(lifetime)))
        return relayed

    async def _request(self, request: stun.Message) -> stun.Message:
        """One authenticated transaction; a 401 (first contact) or 438 (stale nonce) answer
        gives the realm and nonce to sign the retry with."""
        for _ in range(2):
            if self._key is not None:
                request.attributes["USERNAME"] = self._username
                request.attributes["REALM"] = self._realm
                request.attributes["NONCE"] = self._nonce
                request.add_message_integrity(self._key)
            try:
                response, _ = await self._agent.request(
                    request, self.server, integrity_key=self._key, long_term_credential=True
                )
                return response
            except stun.TransactionFailed as exc:
                answer = exc.response
                realm = answer.attributes.get("REALM", self._realm)
                nonce = answer.attributes.get("NONCE")
                if answer.error_code not in (401, 438) or not nonce or not realm:
                    raise TurnError(f"TURN server {self.server[0]}: {exc}") from None
                self._realm, self._nonce = str(realm), bytes(nonce)
                self._key = make_integrity_key(self._username, self._realm, self._password)
                attributes = dict(request.attributes)
                request = stun.Message(
                    request.message_method, request.message_class, attributes=attributes
                )
                for name in ("MESSAGE-INTEGRITY", "FINGERPRINT"):
                    request.attributes.pop(name, None)
            except stun.TransactionTimeout:
                raise TurnError(f"TURN server {self.server[0]}: no answer") from None
        raise TurnError(f"TURN server {self.server[0]}: credentials refused")

    def send(self, data: bytes, peer: Endpoint) -> None:
        """Relay ``data`` to ``peer`` (dropped while its channel is being bound)."""
        channel = self._channels.get(peer)
        if channel is not None:
            self._send(_CHANNEL_HEADER.pack(channel, len(data)) + data, self.server)
            return
        if not self.allocated or peer in self._pending:
            return
        if time.monotonic() - self._failed_at.get(peer, -BIND_RETRY) < BIND_RETRY:
            return
        channel = self._numbers.get(peer)  # a retry for a peer keeps its number (RFC 8656 §12)
        if channel is None:
            if self._next_channel > LAST_CHANNEL:
                log.warning("No TURN channel numbers left", peer=peer)
                return
            channel = self._numbers[peer] = self._next_channel
            self._next_channel += 1
        self._pending[peer] = asyncio.create_task(self._bind(channel, peer))

    async def _bind(self, channel: int, peer: Endpoint) -> None:
        request = stun.Message(stun.Method.CHANNEL_BIND, stun.Class.REQUEST)
        request.attributes["CHANNEL-NUMBER"] = channel
        request.attributes["XOR-PEER-ADDRESS"] = peer
        try:
            await self._request(request)
        except TurnError as exc:
            log.info("TURN channel not bound", peer=f"{peer[0]}:{peer[1]}", reason=str(exc))
            self._failed_at[peer] = time.monotonic()
            return
        finally:
            self._pending.pop(peer, None)
        self._channels[peer] = channel
        self._peers[channel] = peer
        self._bound_at[channel] = time.monotonic()
        log.debug("TURN channel bound", channel=channel, peer=f"{peer[0]}:{peer[1]}")

    def unwrap(self, data: bytes) -> tuple[bytes, Endpoint] | None:
        """Payload and peer of a ChannelData message from the server; None (logged) when
        malformed or for a channel we did not bind."""
        if len(data) < 4:
            return None
        channel, length = _CHANNEL_HEADER.unpack_from(data)
        peer = self._peers.get(channel)
        if peer is None or len(data) < 4 + length:
            log.debug("Dropped ChannelData", channel=channel, size=len(data))
            return None
        return data[4 : 4 + length], peer

    def indication(self, message: stun.Message) -> tuple[bytes, Endpoint] | None:
        """Payload and peer of a Data indication (a peer with a permission but no channel)."""
        if message.message_method != stun.Method.DATA:
            return None
        peer = endpoint_of(message.attributes.get("XOR-PEER-ADDRESS"))
        data = message.attributes.get("DATA")
        if peer is None or not isinstance(data, bytes):
            log.debug("Dropped a malformed Data indication")
            return None
        return data, peer

    async def _maintain(self, lifetime: float) -> None:
        refresh_at = time.monotonic() + lifetime * 0.8
        while True:
            await asyncio.sleep(min(30.0, max(1.0, refresh_at - time.monotonic())))
            now = time.monotonic()
            try:
                if now >= refresh_at:
                    lifetime = float(await self._refresh(LIFETIME))
                    refresh_at = now + lifetime * 0.8
                for channel, bound in list(self._bound_at.items()):
                    if now - bound >= PERMISSION_REFRESH:
                        await self._bind(channel, self._peers[channel])
            except TurnError as exc:
                log.warning("TURN allocation lost", reason=str(exc))
                self._forget()
                if self._on_lost is not None:
                    self._on_lost()
                return

    async def check(self) -> bool:
        """Refresh now: whether the allocation still exists (our NAT may have moved us)."""
        if not self.allocated:
            return False
        try:
            await self._refresh(LIFETIME)
        except TurnError as exc:
            log.info("TURN allocation gone", reason=str(exc))
            self._forget()
            return False
        return True

    async def _refresh(self, lifetime: int) -> int:
        request = stun.Message(stun.Method.REFRESH, stun.Class.REQUEST)
        request.attributes["LIFETIME"] = lifetime
        response = await self._request(request)
        return int(response.attributes.get("LIFETIME", lifetime))

    def _forget(self) -> None:
        if self._maintenance is not None and self._maintenance is not asyncio.current_task():
            self._maintenance.cancel()
        self.relayed = None
        self._channels.clear()
        self._numbers.clear()
        self._peers.clear()
        self._bound_at.clear()
        self._next_channel = FIRST_CHANNEL
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()

    async def close(self) -> None:
        """Delete the allocation (best effort)."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        if self.allocated:
            with contextlib.suppress(TurnError, TimeoutError):
                await asyncio.wait_for(self._refresh(0), 2.0)
        self._forget()
