"""How relay input and kicks travel between signaler instances: the broker interface.

The relay publishes what a member sends and is told, as a :class:`BrokerSink`, what to deliver
to its local members. The in-process broker is here; Redis pub/sub comes with scale-out.
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

    def deliver(self, community: str, message: RelayedMessage) -> None: ...

    def kick(self, community: str) -> None: ...


class Broker(Protocol):
    async def open(self, sink: BrokerSink) -> None: ...

    async def close(self) -> None: ...

    async def watch(self, community: str) -> None:
        """This instance now has members in ``community``: start receiving its traffic."""

    async def unwatch(self, community: str) -> None:
        """This instance's last member of ``community`` left."""

    def publish(self, community: str, message: RelayedMessage) -> None:
        """Send ``message`` to every member of ``community`` on every instance (fire and forget)."""

    async def publish_kick(self, community: str) -> None:
        """Disconnect every member of ``community`` on every instance."""
