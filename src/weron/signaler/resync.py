"""Members of a community deleted while their instance could not hear it are disconnected.

Deleting a community disconnects its members on every instance through the broker's kick.
A kick is missed by an instance whose Redis connection was down when it was published, and is
never published by an instance that could not reach Redis itself (it disconnects its own
members and logs an error). Those members would stay connected to a community that no longer
exists, and would hear whoever created one of the same name later, under another password.

The same goes for instances sharing a database without Redis: a deletion through one of them
disconnects only its own members.

So, with a shared broker or store, each instance checks its members against the store (the truth of
what exists, and of which *generation*): when its own broker reconnects; when another instance
asks, once back, because a kick of its own never went out (``weron.signaler.broker.redis``);
and every ``RESYNC_INTERVAL`` in case such a request was lost too. A member whose community is
gone, or was re-created since it joined (another generation), is disconnected as the kick
would have done. Until the check, a few milliseconds after the reconnect, such a member is
relayed as before. Members are taken before the store is asked, so that one who joins a new
community meanwhile is not judged by an answer older than its join.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Final

from weron.log import get_logger
from weron.signaler.relay import Relay
from weron.signaler.store import CommunityStore, StoreUnavailableError

log = get_logger(__name__)

RESYNC_INTERVAL: Final = 30.0


async def drop_stale_members(store: CommunityStore, relay: Relay) -> int:
    """Disconnect the members whose community is gone or re-created; how many there were."""
    members = [(member, member.community, member.generation) for member in relay.members()]
    if not members:
        return 0
    current = await store.generations({community for _, community, _ in members})
    stale = [
        member for member, community, generation in members if current.get(community) != generation
    ]
    for community, count in collections.Counter(member.community for member in stale).items():
        log.warning(
            "Disconnecting members of a community deleted while this instance could not hear it",
            community=community,
            members=count,
        )
    for member in stale:
        member.kick("community deleted")
    relay.stale_disconnected += len(stale)
    return len(stale)


async def resync_forever(
    store: CommunityStore, relay: Relay, interval: float = RESYNC_INTERVAL
) -> None:
    """Check after each broker reconnect, and every ``interval``; runs until cancelled."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await relay.resync_wanted.wait()
        relay.resync_wanted.clear()
        try:
            await drop_stale_members(store, relay)
        except StoreUnavailableError as exc:
            log.debug("Could not check members against the store yet", error=str(exc))
