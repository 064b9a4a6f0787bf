"""Meeting via a weron signaling server (``gonet --raddr``): members exchange *cards* (public
key + candidates) inside the signaler's sealed envelopes, keyed with the room's signaling key.

A newcomer sends an introduction; every member answers it with an offer carrying its card, and
the newcomer answers each offer with its own card. The signaler only relays sealed bytes.
A member whose candidates changed (its NAT moved it) introduces itself again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from weron.log import get_logger
from weron.rendezvous.card import Card, CardError, decode_card
from weron.rendezvous.room import RoomSecrets
from weron.signaler_client.client import SignalingClient
from weron.signaler_client.messages import Exchange, Introduction, MessageType, SignalingMessage

log = get_logger(__name__)


class Session(Protocol):
    """One connection to the signaler, as :class:`SignalingSession` offers it."""

    async def send(self, message: SignalingMessage) -> None: ...

    def __aiter__(self) -> AsyncIterator[SignalingMessage]: ...


class Sessions(Protocol):
    """What the rendezvous asks of a :class:`SignalingClient`: a session per connection."""

    def sessions(self) -> AsyncIterator[Session]: ...

    async def close(self) -> None: ...


class SignalerRendezvous:
    """Our card out, the other members' cards in, over one signaler community (the client
    comes in: tests give fake sessions, :meth:`to_signaler` a real client)."""

    def __init__(self, client: Sessions, card: Card) -> None:
        self._client = client
        self._card = card
        self._session: Session | None = None
        self._joined = asyncio.Event()

    @classmethod
    def to_signaler(
        cls, raddr: str, secrets: RoomSecrets, card: Card, *, timeout: float = 10.0
    ) -> SignalerRendezvous:
        """Over the room's community on the signaler at ``raddr``."""
        client = SignalingClient(
            raddr, secrets.community, secrets.password, secrets.signaling_key, timeout=timeout
        )
        return cls(client, card)

    async def joined(self) -> None:
        """Return once the signaler let us in and our introduction is out."""
        await self._joined.wait()

    async def announce(self, card: Card) -> None:
        """Our card changed: introduce ourselves again, so every member gets the new one."""
        self._card = card
        if self._session is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._session.send(Introduction(card.id))

    async def members(self) -> AsyncIterator[Card]:
        """Cards of the members we meet (again after every reconnect); runs until cancelled,
        reconnecting by itself, and raises only for errors the user must fix."""
        own = self._card.id
        async for session in self._client.sessions():
            self._session = session
            try:
                await session.send(Introduction(own))
                self._joined.set()
                async for message in session:
                    if message.sender == own:
                        continue
                    if isinstance(message, Introduction):
                        await session.send(
                            Exchange(MessageType.OFFER, own, message.sender, self._card.encode())
                        )
                        continue
                    if message.recipient != own or message.type is MessageType.CANDIDATE:
                        continue
                    try:
                        card = decode_card(message.payload)
                    except CardError as exc:
                        log.debug("Ignoring malformed card", reason=str(exc))
                        continue
                    if card.id != message.sender:
                        log.debug("Ignoring a card sent in another member's name")
                        continue
                    if message.type is MessageType.OFFER:
                        await session.send(
                            Exchange(MessageType.ANSWER, own, message.sender, self._card.encode())
                        )
                    yield card
            except ConnectionClosed:
                continue
            finally:
                self._session = None

    async def close(self) -> None:
        await self._client.close()
