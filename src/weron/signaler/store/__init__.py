"""Where communities live: the persistence interface the signaler is written against.

Two stores implement it: :mod:`.memory` (the default, one process; keyed HMAC verifiers) and
:mod:`.postgres` (several signaler instances sharing one database; bcrypt through
:class:`weron.signaler.passwords.PasswordHasher`). ``source`` names who asks (the client's
address), so that the bcrypt work is shared fairly between sources.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from weron.community import Community

__all__ = [
    "Community",
    "CommunityExistsError",
    "CommunityNotFoundError",
    "CommunityStore",
    "EphemeralCommunitiesDisabledError",
    "Membership",
    "StoreError",
    "StoreUnavailableError",
    "WrongCommunityPasswordError",
]


@dataclass(frozen=True, slots=True)
class Membership:
    """Proof of one join; ``generation`` tells apart a community from a later one of the same id,
    so that leaving a deleted (and since re-created) community cannot decrement the new one;
    ``token`` names the join in a shared store, so that a retried count change applies once."""

    community: str
    generation: int
    token: int = field(default=0, compare=False)


class StoreError(Exception):
    """Base class of the expected, user-facing failures of a store."""


class StoreUnavailableError(Exception):
    """The store cannot be reached (database down): an operational failure, not the user's."""


class WrongCommunityPasswordError(StoreError):
    def __init__(self, community: str) -> None:
        super().__init__(f"wrong password for community {community!r}")


class EphemeralCommunitiesDisabledError(StoreError):
    def __init__(self, community: str) -> None:
        super().__init__(
            f"community {community!r} does not exist and ephemeral communities are disabled"
        )


class CommunityExistsError(StoreError):
    def __init__(self, community: str) -> None:
        super().__init__(f"community {community!r} already exists")


class CommunityNotFoundError(StoreError):
    def __init__(self, community: str) -> None:
        super().__init__(f"community {community!r} does not exist")


class CommunityStore(Protocol):
    """Persistence of communities: passwords (bcrypt), client counts, persistence flag."""

    shared: bool  # other signaler instances may use it: they may delete our communities

    async def open(self) -> None:
        """Connect and prepare; raises :class:`StoreUnavailableError` saying why it cannot."""

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Readiness: return if the store answers, else raise :class:`StoreUnavailableError`."""

    async def cleanup(self) -> None:
        """Undo what crashed signaler instances left behind (``--cleanup``): their members'
        client counts, and the ephemeral communities only they kept alive."""

    def draining(self) -> None:
        """The signaler is shutting down: members leave now because it goes, so keep what a
        restart should find (the in-memory store with a state file keeps their communities)."""

    async def join(
        self, community: str, password: str, *, ephemeral: bool, source: str = ""
    ) -> Membership:
        """Count one more client, creating an ephemeral community if allowed and needed."""

    async def leave(self, membership: Membership) -> None:
        """Count one client less; an ephemeral community goes away with its last client."""

    async def create(self, community: str, password: str, source: str = "") -> Community:
        """Create a persistent community."""

    async def delete(self, community: str) -> None:
        """Delete a community, persistent or ephemeral."""

    async def list(self) -> list[Community]: ...

    async def generations(self, communities: Collection[str]) -> dict[str, int]:
        """The generation of each of ``communities`` that exists now: a member whose
        membership names another one (or none) belongs to a community deleted since."""
