"""Members of communities deleted (or deleted and re-created) while their instance could not
hear the kick are disconnected once it checks them against the store."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest
from tests.unit.signaler.test_relay import FakeMember
from websockets.asyncio.client import connect
from websockets.protocol import State

from weron.signaler.broker.local import LocalBroker
from weron.signaler.relay import Relay
from weron.signaler.resync import drop_stale_members, resync_forever
from weron.signaler.server import Signaler
from weron.signaler.services import SignalerConfig
from weron.signaler.store import StoreUnavailableError
from weron.signaler.store.memory import MemoryStore


async def member(store: MemoryStore, relay: Relay, id_: str, community: str) -> FakeMember:
    membership = await store.join(community, "pw", ephemeral=True)
    joined = FakeMember(id_, community, generation=membership.generation)
    await relay.attach(joined)
    return joined


async def test_members_of_deleted_and_recreated_communities_go_the_others_stay() -> None:
    store, relay = MemoryStore(), Relay(LocalBroker())
    kept = await member(store, relay, "a", "kept")
    deleted = await member(store, relay, "b", "deleted")
    stale = await member(store, relay, "c", "recreated")
    await store.delete("deleted")
    await store.delete("recreated")
    fresh = await member(store, relay, "d", "recreated")  # another generation, same name
    assert await drop_stale_members(store, relay) == 2
    assert relay.stale_disconnected == 2
    assert deleted.kicks == stale.kicks == ["community deleted"]
    assert kept.kicks == fresh.kicks == []
    assert await drop_stale_members(MemoryStore(), Relay(LocalBroker())) == 0  # nobody here


class JoinDuringCheck(MemoryStore):
    """A member joins a new community while the store is being asked."""

    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self.relay = relay
        self.joined: FakeMember | None = None

    async def generations(self, communities: Collection[str]) -> dict[str, int]:
        answer = await super().generations(communities)
        self.joined = await member(self, self.relay, "late", "new")
        return answer


async def test_a_member_who_joined_during_the_check_is_not_judged_by_it() -> None:
    relay = Relay(LocalBroker())
    store = JoinDuringCheck(relay)
    await member(store, relay, "a", "old")
    assert await drop_stale_members(store, relay) == 0
    assert store.joined is not None and store.joined.kicks == []


class Unreachable(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()

    async def generations(self, communities: Collection[str]) -> dict[str, int]:
        self.asked.set()
        raise StoreUnavailableError("cannot use PostgreSQL: gone")


async def test_checks_run_when_asked_and_periodically_and_survive_a_lost_store() -> None:
    relay = Relay(LocalBroker())
    store = MemoryStore()
    doomed = await member(store, relay, "a", "doomed")
    checking = asyncio.create_task(resync_forever(store, relay, interval=3600))
    try:
        await store.delete("doomed")
        await asyncio.sleep(0.01)
        assert doomed.kicks == []  # nothing asked yet, the period is long
        relay.kicks_missed()
        async with asyncio.timeout(5):
            while not doomed.kicks:
                await asyncio.sleep(0.01)
    finally:
        checking.cancel()
    unreachable = Unreachable()
    await member(unreachable, relay, "b", "kept")
    periodic = asyncio.create_task(resync_forever(unreachable, relay, interval=0.01))
    try:
        async with asyncio.timeout(5):
            await unreachable.asked.wait()
            unreachable.asked.clear()
            await unreachable.asked.wait()  # asked again: the error did not end the loop
        assert not periodic.done()
    finally:
        periodic.cancel()
    with pytest.raises(asyncio.CancelledError):
        await periodic


class SharedMemoryStore(MemoryStore):
    """As a database other instances use: they delete communities behind our back."""

    shared = True


@pytest.mark.parametrize("shared", [True, False])
async def test_a_signaler_on_a_shared_store_checks_its_members(shared: bool) -> None:
    """Without Redis a deletion through another instance reaches us only through the check;
    on a store of its own (a kick cannot be missed), the signaler runs no check."""
    store = SharedMemoryStore() if shared else MemoryStore()
    signaler = Signaler(SignalerConfig(web=False, bcrypt_rounds=4), store=store)
    await signaler.start("127.0.0.1", 0)
    try:
        url = f"ws://127.0.0.1:{signaler.port}/?community=doomed&password=pw"
        async with connect(url) as connection:
            await store.delete("doomed")  # by another instance
            signaler.relay.kicks_missed()  # as the period's end would
            if shared:
                async with asyncio.timeout(5):
                    await connection.wait_closed()
                assert connection.close_reason == "community deleted"
            else:
                await asyncio.sleep(0.2)
                assert connection.state is State.OPEN
    finally:
        await signaler.close()
