"""How relay input and kicks travel between signaler instances: the broker interface.

The relay publishes what a member sends and is told, as a :class:`BrokerSink`, what to deliver
to its local members. Two brokers implement it: :mod:`.local` (in-process, one signaler) and
:mod:`.redis` (Redis pub/sub between signaler instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RelayedMessage:
    """One WebSocket message as a member sent it: frame type and bytes, never decoded."""

    sender: str  # the sending member's id, unique across instances: not delivered back to it
    text: bool  # text frame (what Go peers send, with non-UTF-8 payloads) or binary frame
    payload: bytes


class BrokerSink(Protocol):
    """The receiving end of a broker: the relay of this instance."""

    def fan_out(self, community: str, message: RelayedMessage) -> None: ...

    def kick(self, community: str) -> None: ...

    def kicks_missed(self) -> None:
        """Kicks may have been missed: the broker was cut off from the other instances, or
        one of them could not publish a kick (see ``weron.signaler.resync``)."""


class BrokerUnavailableError(Exception):
    """The broker cannot reach its server (Redis down): an operational failure."""


class Broker(Protocol):
    messages_lost: int  # published here but never sent to other instances (outages)
    reconnects: int
    # Other instances relay too: a kick one of them publishes can be missed here, or never be
    # published at all (its Redis was out of reach), so members are checked against the store.
    shared: bool

    async def open(self, sink: BrokerSink) -> None:
        """Connect; raises :class:`BrokerUnavailableError` saying why it cannot."""

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Readiness: return if the broker is connected, else raise BrokerUnavailableError."""

    async def watch(self, community: str) -> None:
        """This instance now has members in ``community``: start receiving its traffic."""

    async def unwatch(self, community: str) -> None:
        """This instance's last member of ``community`` left."""

    def publish(self, community: str, message: RelayedMessage) -> None:
        """Send ``message`` to every member of ``community`` on every instance (fire and forget)."""

    async def publish_kick(self, community: str) -> None:
        """Disconnect every member of ``community`` on every instance."""
