"""A message channel without a network, for the unit tests of what sits on channels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from weron.webrtc import ChannelClosedError, echo_on_loop


class FakeChannel:
    """Receives ``messages`` (and those ``push``ed later), then reports closed (or, with
    ``linger``, waits for more until closed); records what is sent. ``room`` is how many more
    messages ``send_nowait`` accepts before the send buffer counts as full."""

    def __init__(
        self,
        *messages: bytes,
        room: int = 1 << 30,
        max_size: int = 1 << 16,
        linger: bool = False,
    ) -> None:
        self.inbox = list(messages)
        self.linger = linger
        self._arrived = asyncio.Event()  # a message pushed, or closed
        self.sent: list[bytes] = []
        self.room = room
        self.max_size = max_size
        self.closed = False
        self.receiver: Callable[[bytes], None] | None = None

    @property
    def label(self) -> str:
        return "fake"

    @property
    def max_message_size(self) -> int:
        return self.max_size

    async def send(self, message: bytes) -> None:
        self.sent.append(message)

    async def drain(self) -> None:
        """Everything is sent at once."""

    def send_nowait(self, message: bytes) -> bool:
        if self.closed:
            raise ChannelClosedError("closed")
        if self.room <= 0:
            return False
        self.room -= 1
        self.sent.append(message)
        return True

    def set_receiver(self, receiver: Callable[[bytes], None], *, any_thread: bool = False) -> None:
        while self.inbox:
            receiver(self.inbox.pop(0))
        self.receiver = receiver

    async def echo(self) -> None:
        await echo_on_loop(self)

    def push(self, message: bytes) -> None:
        """A message that arrives while the channel is open."""
        self.inbox.append(message)
        self._arrived.set()

    async def receive(self) -> bytes:
        await asyncio.sleep(0)
        while not self.inbox and self.linger and not self.closed:
            self._arrived.clear()
            await self._arrived.wait()
        if not self.inbox:
            raise ChannelClosedError("closed")
        return self.inbox.pop(0)

    def close(self) -> None:
        self.closed = True
        self.inbox.clear()
        self._arrived.set()
