"""One bcrypt hash per new community, however many first joins race to create it."""

from __future__ import annotations

import asyncio

from weron.signaler.passwords import PasswordHasher


class CreationGate:
    """While the first join of a community hashes its password, later joins of the same
    community wait for it (then check their password against the stored hash) instead of each
    computing, and throwing away, a hash of their own."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        self._creating: dict[str, asyncio.Future[None]] = {}

    async def wait(self, community: str) -> bool:
        """Wait for a creation of ``community`` under way here; whether there was one."""
        pending = self._creating.get(community)
        if pending is None:
            return False
        await asyncio.shield(pending)
        return True

    async def hash(self, community: str, password: str) -> bytes:
        """The hash for a new ``community``; concurrent :meth:`wait` calls return after it."""
        done = asyncio.get_running_loop().create_future()
        self._creating[community] = done
        try:
            return await self._hasher.hash(password)
        finally:
            del self._creating[community]
            done.set_result(None)
