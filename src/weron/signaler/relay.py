"""The relay: every message a member sends goes, unchanged, to every other member.

It never looks inside a payload. A message bound for many members is framed once and the same
bytes are written to each of them (server frames are unmasked, so they are identical).

Frame types (docs/wire-protocol.md#relay): Go-compatible peers send their sealed messages as text
frames that are not UTF-8, which a browser must refuse. So a member that joined with an
``Origin`` (a browser) receives every message as a binary frame, and what it sends is relayed as
the text frame a Go peer sends: the bytes never change, only the opcode.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from websockets.frames import Frame, Opcode

from weron.log import get_logger
from weron.signaler.broker import Broker, RelayedMessage

log = get_logger(__name__)


class RelayMember(Protocol):
    """What the relay needs of a connected member."""

    @property
    def id(self) -> str: ...

    @property
    def community(self) -> str: ...

    @property
    def generation(self) -> int:
        """The generation of the community it joined (see ``Membership``)."""

    @property
    def binary_frames(self) -> bool:
        """Whether this member receives every message as a binary frame (a browser)."""

    def send_frame(self, frame: bytes) -> None:
        """Queue an already framed message; a member too far behind is dropped, not waited for."""

    def kick(self, reason: str) -> None: ...


def frame_message(message: RelayedMessage) -> bytes:
    opcode = Opcode.TEXT if message.text else Opcode.BINARY
    return Frame(opcode, message.payload).serialize(mask=False)


class Relay:
    """Members by community on this instance; the broker's sink."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._communities: dict[str, dict[str, RelayMember]] = {}
        self.messages_relayed = 0
        self.stale_disconnected = 0  # members of communities deleted out of our hearing
        # Kicks from other instances may have been missed: see weron.signaler.resync.
        self.resync_wanted = asyncio.Event()

    async def attach(self, member: RelayMember) -> None:
        members = self._communities.get(member.community)
        if members is None:
            members = self._communities[member.community] = {}
            members[member.id] = member
            await self._broker.watch(member.community)
        else:
            members[member.id] = member

    async def detach(self, member: RelayMember) -> None:
        members = self._communities.get(member.community)
        if members is None or members.get(member.id) is not member:
            return
        del members[member.id]
        if not members:
            del self._communities[member.community]
            await self._broker.unwatch(member.community)

    def publish(self, member: RelayMember, *, text: bool, payload: bytes) -> None:
        # A browser's message reaches the others as a Go peer's would: in a text frame.
        text = text or member.binary_frames
        self._broker.publish(member.community, RelayedMessage(member.id, text, payload))

    def fan_out(self, community: str, message: RelayedMessage) -> None:
        members = self._communities.get(community)
        if not members:
            return
        frame = frame_message(message)
        binary = frame if not message.text else None  # framed on the first browser member
        # Copy: a member dropped for falling behind leaves the dict while we iterate.
        for member_id, member in list(members.items()):
            if member_id == message.sender:
                continue
            if member.binary_frames:
                if binary is None:
                    binary = frame_message(RelayedMessage(message.sender, False, message.payload))
                member.send_frame(binary)
            else:
                member.send_frame(frame)
        self.messages_relayed += 1

    def kick(self, community: str) -> None:
        members = self._communities.get(community)
        if not members:
            return
        log.info(
            "Disconnecting members of deleted community", community=community, members=len(members)
        )
        for member in list(members.values()):
            member.kick("community deleted")

    def kicks_missed(self) -> None:
        self.resync_wanted.set()

    def member_count(self) -> int:
        return sum(len(members) for members in self._communities.values())

    def members(self) -> list[RelayMember]:
        return [member for members in self._communities.values() for member in members.values()]
