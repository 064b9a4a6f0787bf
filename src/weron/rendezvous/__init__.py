"""Where gonet peers meet and exchange public keys and endpoints: the interface every way of
meeting offers (:class:`Rendezvous`), here as the house keeps interfaces in their package's
``__init__``; ``via_server.py`` meets through a weron signaling server, ``dht.py`` through the
BitTorrent DHT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from weron.rendezvous.card import Card


class RendezvousError(Exception):
    """The rendezvous could not let us into the room: said to the user, no traceback."""


class Rendezvous(Protocol):
    """Where members meet: our card out, theirs in."""

    def members(self) -> AsyncIterator[Card]: ...

    async def joined(self) -> None:
        """Return once our card is out (the signaler let us in, our DHT record is stored);
        raise if that cannot happen."""

    async def announce(self, card: Card) -> None: ...

    async def close(self) -> None: ...
