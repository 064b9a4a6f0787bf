"""In-memory community store: the default, for a single signaler process.

Verifiers are keyed HMACs (:class:`weron.signaler.passwords.KeyedVerifier`), not bcrypt: they
never leave the process, so a join that creates a community costs microseconds, not a bcrypt
hash. With a state file (``--state``) the communities and the key outlive a restart: ephemeral
ones for a grace period, in which their members come back (a squatter with another password gets
401), persistent ones for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from weron.log import get_logger
from weron.signaler.passwords import KeyedVerifier
from weron.signaler.store import (
    Community,
    CommunityExistsError,
    CommunityNotFoundError,
    EphemeralCommunitiesDisabledError,
    Membership,
    StoreUnavailableError,
    WrongCommunityPasswordError,
)
from weron.signaler.store.state import (
    SavedCommunity,
    State,
    StateFileError,
    read_state,
    write_state,
)

log = get_logger(__name__)
_SAVE_DELAY: Final = 0.5  # changes within this time are saved together


@dataclass(slots=True)
class _Record:
    verifier: bytes
    clients: int
    persistent: bool
    generation: int
    expires: float | None = None  # restored and not joined since: gone at this loop time


class MemoryStore:
    """Communities in a dict; nothing here awaits while deciding, so no locks are needed.
    ``state_file``: where communities are saved; ``grace``: how long a restored ephemeral
    community waits for its first member."""

    shared = False

    def __init__(self, state_file: Path | None = None, grace: float = 60.0) -> None:
        self._verifier = KeyedVerifier(os.urandom(32))
        self._records: dict[str, _Record] = {}
        self._generations = itertools.count(1)
        self._state_file = state_file
        self._grace = grace
        self._save_task: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._draining = False

    async def open(self) -> None:
        if self._state_file is None:
            return
        try:
            state = read_state(self._state_file)
        except StateFileError as exc:
            raise StoreUnavailableError(
                f"{exc} (move it away to start with no communities)"
            ) from None
        loop = asyncio.get_running_loop()
        if state is not None:
            self._verifier = KeyedVerifier(state.secret)
            expires = loop.time() + self._grace
            for saved in state.communities:
                self._records[saved.id] = _Record(
                    saved.verifier,
                    0,
                    saved.persistent,
                    next(self._generations),
                    None if saved.persistent else expires,
                )
            self._expiry = loop.call_later(self._grace, self._expire)
            log.info(
                "Restored communities from the state file",
                path=str(self._state_file),
                communities=len(self._records),
                grace_s=self._grace,
            )
        await self._save()  # now: a state file that cannot be written is an error at start

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self._save_task is not None:
            self._save_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._save_task
        if self._state_file is not None:
            with contextlib.suppress(StoreUnavailableError):
                await self._save()
        self._records.clear()

    def draining(self) -> None:
        self._draining = True

    async def check(self) -> None:
        return None

    async def cleanup(self) -> None:
        # Nothing outlives this process but its state file: reset all of it.
        for community, record in list(self._records.items()):
            if record.persistent:
                record.clients = 0
            else:
                del self._records[community]
        self._changed()

    async def join(
        self, community: str, password: str, *, ephemeral: bool, source: str = ""
    ) -> Membership:
        record = self._records.get(community)
        if record is not None and self._expired(record):
            del self._records[community]
            record = None
        if record is None:
            if not ephemeral:
                raise EphemeralCommunitiesDisabledError(community)
            verifier = self._verifier.make(community, password)
            record = _Record(verifier, 1, False, next(self._generations))
            self._records[community] = record
            self._changed()
            return Membership(community, record.generation)
        if not self._verifier.matches(community, password, record.verifier):
            raise WrongCommunityPasswordError(community)
        record.clients += 1
        record.expires = None
        return Membership(community, record.generation)

    def _expired(self, record: _Record) -> bool:
        return (
            record.expires is not None
            and record.clients == 0
            and record.expires <= asyncio.get_running_loop().time()
        )

    def _expire(self) -> None:
        """The grace period is over: restored communities nobody came back to go."""
        for community, record in list(self._records.items()):
            if self._expired(record):
                del self._records[community]
                self._changed()

    async def leave(self, membership: Membership) -> None:
        record = self._records.get(membership.community)
        if record is None or record.generation != membership.generation:
            return
        record.clients = max(0, record.clients - 1)
        if record.clients == 0 and not record.persistent and not self._draining:
            del self._records[membership.community]
            self._changed()

    async def create(self, community: str, password: str, source: str = "") -> Community:
        if community in self._records:
            raise CommunityExistsError(community)
        verifier = self._verifier.make(community, password)
        self._records[community] = _Record(verifier, 0, True, next(self._generations))
        self._changed()
        return Community(community, 0, True)

    async def delete(self, community: str) -> None:
        if self._records.pop(community, None) is None:
            raise CommunityNotFoundError(community)
        self._changed()

    async def list(self) -> list[Community]:
        return [
            Community(community, record.clients, record.persistent)
            for community, record in self._records.items()
        ]

    async def generations(self, communities: Collection[str]) -> dict[str, int]:
        return {
            community: record.generation
            for community in communities
            if (record := self._records.get(community)) is not None
        }

    # The state file

    def _changed(self) -> None:
        """Save soon: changes close together are written once."""
        if self._state_file is not None and not self._draining and self._save_task is None:
            self._save_task = asyncio.get_running_loop().create_task(
                self._save_later(), name="save signaler state"
            )

    async def _save_later(self) -> None:
        await asyncio.sleep(_SAVE_DELAY)
        self._save_task = None
        try:
            await self._save()
        except StoreUnavailableError as exc:
            log.warning("Could not save the signaler state", error=str(exc))

    async def _save(self) -> None:
        assert self._state_file is not None
        state = State(
            self._verifier.secret,
            tuple(
                SavedCommunity(community, record.verifier, record.persistent)
                for community, record in self._records.items()
            ),
        )
        try:
            await asyncio.to_thread(write_state, self._state_file, state)
        except StateFileError as exc:
            raise StoreUnavailableError(str(exc)) from None
