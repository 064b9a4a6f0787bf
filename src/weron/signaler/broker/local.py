"""In-process broker: one signaler instance, delivery is a direct call."""

from __future__ import annotations

from weron.signaler.broker import BrokerSink, RelayedMessage


class LocalBroker:
    shared = False

    def __init__(self) -> None:
        self._sink: BrokerSink | None = None
        self.messages_lost = 0
        self.reconnects = 0

    async def open(self, sink: BrokerSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._sink = None

    async def check(self) -> None:
        return None

    async def watch(self, community: str) -> None:
        return None

    async def unwatch(self, community: str) -> None:
        return None

    def publish(self, community: str, message: RelayedMessage) -> None:
        if self._sink is not None:
            self._sink.fan_out(community, message)

    async def publish_kick(self, community: str) -> None:
        if self._sink is not None:
            self._sink.kick(community)
