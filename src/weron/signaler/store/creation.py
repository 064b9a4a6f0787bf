"""One bcrypt hash per new community, however many first joins race to create it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CreationGate:
    """While the first join of a community creates it (hashes its password, stores it), later
    joins of the same community wait for that, then check their password against the stored
    hash, instead of each computing, and throwing away, a hash of their own."""

    def __init__(self) -> None:
        self._creating: dict[str, asyncio.Future[None]] = {}

    async def wait(self, community: str) -> bool:
        """Wait for a creation of ``community`` under way here; whether there was one."""
        pending = self._creating.get(community)
        if pending is None:
            return False
        await asyncio.shield(pending)
        return True

    @contextlib.asynccontextmanager
    async def creating(self, community: str) -> AsyncIterator[None]:
        """Hold the gate of ``community`` until the block (hash and store) is done."""
        done = asyncio.get_running_loop().create_future()
        self._creating[community] = done
        try:
            yield
        finally:
            del self._creating[community]
            done.set_result(None)
