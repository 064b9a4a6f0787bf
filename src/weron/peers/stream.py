"""A byte-stream view of a data channel, for protocols that think in lines or bytes rather
than messages (Go's weron hands out an ``io.ReadWriteCloser``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from weron.webrtc import ChannelClosedError, DataChannel


class ChannelStream:
    """Reads ignore message boundaries; each :meth:`write` is one message."""

    def __init__(self, channel: DataChannel) -> None:
        self._channel = channel
        self._buffer = bytearray()
        self._eof = False

    async def _fill(self) -> bool:
        """Append one more message to the buffer; ``False`` at the end of the stream."""
        if self._eof:
            return False
        try:
            self._buffer += await self._channel.receive()
        except ChannelClosedError:
            self._eof = True
            return False
        return True

    async def read(self, limit: int = -1) -> bytes:
        """Up to ``limit`` bytes (everything buffered if -1); ``b""`` at the end of the stream."""
        if not self._buffer:
            await self._fill()
        size = len(self._buffer) if limit < 0 else min(limit, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def readline(self) -> bytes:
        """The next line with its ``\\n``; the rest of the stream if it ends without one."""
        while (end := self._buffer.find(b"\n")) < 0:
            if not await self._fill():
                return await self.read()
        return await self.read(end + 1)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        while line := await self.readline():
            yield line

    async def write(self, data: bytes) -> None:
        await self._channel.send(data)

    def close(self) -> None:
        self._channel.close()
