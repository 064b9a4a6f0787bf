"""Meeting through a weron signaler: members exchange *cards* (public key + UDP endpoints)
inside the signaler's sealed envelopes, keyed with the room's signaling key.

A newcomer sends an introduction; every member answers it with an offer carrying its card, and
the newcomer answers each offer with its own card. The signaler only relays sealed bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed

from weron.log import get_logger
from weron.rendezvous.room import RoomSecrets
from weron.signaling.client import SignalingClient
from weron.signaling.messages import Exchange, Introduction, MessageType
from weron.wireguard.cookie import Endpoint
from weron.wireguard.keys import KeyFormatError, decode_key, encode_key

log = get_logger(__name__)
MAX_ENDPOINTS = 16


class CardError(ValueError):
    """A payload that is not a member card."""


@dataclass(frozen=True, slots=True)
class Card:
    public_key: bytes
    endpoints: tuple[Endpoint, ...]

    @property
    def id(self) -> str:
        return encode_key(self.public_key)

    def encode(self) -> bytes:
        document = {
            "publicKey": self.id,
            "endpoints": [f"{host}:{port}" for host, port in self.endpoints],
        }
        return json.dumps(document, separators=(",", ":")).encode()


def _endpoint(text: Any) -> Endpoint:
    if not isinstance(text, str):
        raise CardError("an endpoint is a HOST:PORT string")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CardError(f"not a HOST:PORT endpoint: {text[:64]!r}")
    return host.strip("[]"), int(port)


def decode_card(payload: bytes) -> Card:
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CardError("not a JSON object")
    key = document.get("publicKey")
    endpoints = document.get("endpoints")
    if not isinstance(key, str) or not isinstance(endpoints, list):
        raise CardError("publicKey (string) and endpoints (list) are required")
    try:
        public_key = decode_key(key)
    except KeyFormatError as exc:
        raise CardError(f"publicKey: {exc}") from None
    return Card(public_key, tuple(_endpoint(item) for item in endpoints[:MAX_ENDPOINTS]))


class SignalerRendezvous:
    """Our card out, the other members' cards in, over one signaler community."""

    def __init__(
        self, raddr: str, secrets: RoomSecrets, card: Card, *, timeout: float = 10.0
    ) -> None:
        self._client = SignalingClient(
            raddr, secrets.community, secrets.password, secrets.signaling_key, timeout=timeout
        )
        self._card = card

    async def members(self) -> AsyncIterator[Card]:
        """Cards of the members we meet (again after every reconnect); runs until cancelled,
        reconnecting by itself, and raises only for errors the user must fix."""
        own = self._card.id
        payload = self._card.encode()
        async for session in self._client.sessions():
            try:
                await session.send(Introduction(own))
                async for message in session:
                    if message.sender == own:
                        continue
                    if isinstance(message, Introduction):
                        await session.send(
                            Exchange(MessageType.OFFER, own, message.sender, payload)
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
                            Exchange(MessageType.ANSWER, own, message.sender, payload)
                        )
                    yield card
            except ConnectionClosed:
                continue

    async def close(self) -> None:
        await self._client.close()
