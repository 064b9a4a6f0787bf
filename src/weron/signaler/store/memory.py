"""In-memory community store: the default, for a single signaler process."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from weron.signaler.passwords import PasswordHasher
from weron.signaler.store import (
    Community,
    CommunityExistsError,
    CommunityNotFoundError,
    EphemeralCommunitiesDisabledError,
    Membership,
    WrongPasswordError,
)
from weron.signaler.store.creation import CreationGate


@dataclass(slots=True)
class _Record:
    password_hash: bytes
    clients: int
    persistent: bool
    generation: int


class MemoryStore:
    """Communities in a dict; state changes happen between awaits, so no locks are needed,
    but every decision taken before an await (a bcrypt call) is checked again after it."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        self._records: dict[str, _Record] = {}
        self._generations = itertools.count(1)
        self._gate = CreationGate()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self._records.clear()

    async def check(self) -> None:
        return None

    async def cleanup(self) -> None:
        # Nothing outlives this process: all of it is this instance's, so reset all of it.
        for community, record in list(self._records.items()):
            if record.persistent:
                record.clients = 0
            else:
                del self._records[community]

    async def join(self, community: str, password: str, *, ephemeral: bool) -> Membership:
        while True:
            record = self._records.get(community)
            if record is None:
                if not ephemeral:
                    raise EphemeralCommunitiesDisabledError(community)
                if await self._gate.wait(community):
                    continue
                async with self._gate.creating(community):
                    password_hash = await self._hasher.hash(password)
                    if community in self._records:
                        continue  # created meanwhile (by create()): check against that one
                    record = _Record(password_hash, 1, False, next(self._generations))
                    self._records[community] = record
                return Membership(community, record.generation)
            if not await self._hasher.verify(password, record.password_hash):
                raise WrongPasswordError(community)
            if self._records.get(community) is not record:
                continue  # deleted or replaced while we verified
            record.clients += 1
            return Membership(community, record.generation)

    async def leave(self, membership: Membership) -> None:
        record = self._records.get(membership.community)
        if record is None or record.generation != membership.generation:
            return
        record.clients = max(0, record.clients - 1)
        if record.clients == 0 and not record.persistent:
            del self._records[membership.community]

    async def create(self, community: str, password: str) -> Community:
        if community in self._records:
            raise CommunityExistsError(community)
        password_hash = await self._hasher.hash(password)
        if community in self._records:
            raise CommunityExistsError(community)
        record = _Record(password_hash, 0, True, next(self._generations))
        self._records[community] = record
        return Community(community, 0, True)

    async def delete(self, community: str) -> None:
        if self._records.pop(community, None) is None:
            raise CommunityNotFoundError(community)

    async def list(self) -> list[Community]:
        return [
            Community(community, record.clients, record.persistent)
            for community, record in self._records.items()
        ]
