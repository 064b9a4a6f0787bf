"""Where communities live: the persistence interface the signaler is written against.

The in-memory store is here; PostgreSQL comes with the scale-out work. Every store checks
passwords through :class:`weron.signaler.passwords.PasswordHasher`, never by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    "WrongPasswordError",
]


@dataclass(frozen=True, slots=True)
class Membership:
    """Proof of one join; ``generation`` tells apart a community from a later one of the same id,
    so that leaving a deleted (and since re-created) community cannot decrement the new one."""

    community: str
    generation: int


class StoreError(Exception):
    """Base class of the expected, user-facing failures of a store."""


class WrongPasswordError(StoreError):
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

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def cleanup(self) -> None:
        """Remove every ephemeral community and reset all client counts (``--cleanup``)."""

    async def join(self, community: str, password: str, *, ephemeral: bool) -> Membership:
        """Count one more client, creating an ephemeral community if allowed and needed."""

    async def leave(self, membership: Membership) -> None:
        """Count one client less; an ephemeral community goes away with its last client."""

    async def create(self, community: str, password: str) -> Community:
        """Create a persistent community."""

    async def delete(self, community: str) -> None:
        """Delete a community, persistent or ephemeral."""

    async def list(self) -> list[Community]: ...
