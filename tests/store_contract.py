"""The community store contract: every store (memory, PostgreSQL) must pass these tests.

Test modules import them and provide two fixtures: ``hasher`` (a cheap PasswordHasher) and
``make_store`` (an opened, empty store around a given hasher).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest

from weron.community import Community
from weron.signaler.passwords import PasswordHasher
from weron.signaler.store import (
    CommunityExistsError,
    CommunityNotFoundError,
    CommunityStore,
    EphemeralCommunitiesDisabledError,
    Membership,
    WrongCommunityPasswordError,
)

MakeStore = Callable[[PasswordHasher], Awaitable[CommunityStore]]


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(rounds=4)
    yield hasher
    hasher.close()


@pytest.fixture
async def store(make_store: MakeStore, hasher: PasswordHasher) -> CommunityStore:
    return await make_store(hasher)


async def communities(store: CommunityStore) -> dict[str, Community]:
    return {community.id: community for community in await store.list()}


async def test_first_join_creates_ephemeral_community(store: CommunityStore) -> None:
    membership = await store.join("c", "pw", ephemeral=True)
    assert membership.community == "c"
    assert await store.list() == [Community("c", 1, False)]


async def test_second_join_with_right_password(store: CommunityStore) -> None:
    first = await store.join("c", "pw", ephemeral=True)
    second = await store.join("c", "pw", ephemeral=True)
    assert first == second  # same community, same generation
    assert await store.list() == [Community("c", 2, False)]


async def test_wrong_password(store: CommunityStore) -> None:
    await store.join("c", "pw", ephemeral=True)
    with pytest.raises(WrongCommunityPasswordError, match="'c'"):
        await store.join("c", "PW", ephemeral=True)
    assert await store.list() == [Community("c", 1, False)]


async def test_last_leave_removes_ephemeral_community(store: CommunityStore) -> None:
    first = await store.join("c", "pw", ephemeral=True)
    second = await store.join("c", "pw", ephemeral=True)
    await store.join("other", "pw", ephemeral=True)
    await store.leave(first)
    assert (await communities(store))["c"].clients == 1
    await store.leave(second)
    assert list(await communities(store)) == ["other"]


async def test_persistent_community_stays_after_last_leave(store: CommunityStore) -> None:
    assert await store.create("p", "pw") == Community("p", 0, True)
    membership = await store.join("p", "pw", ephemeral=True)
    assert await store.list() == [Community("p", 1, True)]
    await store.leave(membership)
    await store.leave(membership)  # never below zero
    assert await store.list() == [Community("p", 0, True)]
    with pytest.raises(WrongCommunityPasswordError):
        await store.join("p", "other", ephemeral=True)


async def test_create_existing(store: CommunityStore) -> None:
    await store.join("c", "pw", ephemeral=True)
    with pytest.raises(CommunityExistsError):
        await store.create("c", "pw")
    await store.create("p", "pw")
    with pytest.raises(CommunityExistsError):
        await store.create("p", "other")


async def test_concurrent_creates_make_one_community(store: CommunityStore) -> None:
    results = await asyncio.gather(
        *(store.create("p", "pw") for _ in range(5)), return_exceptions=True
    )
    assert results.count(Community("p", 0, True)) == 1
    assert sum(isinstance(result, CommunityExistsError) for result in results) == 4


async def test_delete(store: CommunityStore) -> None:
    await store.create("p", "pw")
    await store.join("e", "pw", ephemeral=True)
    await store.delete("p")
    await store.delete("e")
    assert await store.list() == []
    with pytest.raises(CommunityNotFoundError):
        await store.delete("p")


async def test_delete_unknown(store: CommunityStore) -> None:
    with pytest.raises(CommunityNotFoundError, match="'nope'"):
        await store.delete("nope")


async def test_ephemeral_communities_disabled(store: CommunityStore) -> None:
    with pytest.raises(EphemeralCommunitiesDisabledError):
        await store.join("unknown", "pw", ephemeral=False)
    assert await store.list() == []
    await store.create("p", "pw")
    await store.join("p", "pw", ephemeral=False)
    assert await store.list() == [Community("p", 1, True)]
    with pytest.raises(WrongCommunityPasswordError):
        await store.join("p", "wrong", ephemeral=False)


async def test_old_membership_does_not_touch_recreated_community(store: CommunityStore) -> None:
    old = await store.join("c", "pw", ephemeral=True)
    await store.delete("c")
    await store.create("c", "new")
    new = await store.join("c", "new", ephemeral=True)
    assert new.generation != old.generation
    await store.leave(old)
    assert await store.list() == [Community("c", 1, True)]
    await store.leave(new)
    assert await store.list() == [Community("c", 0, True)]


async def test_leave_of_unknown_community_is_ignored(store: CommunityStore) -> None:
    await store.leave(Membership("ghost", 1))
    assert await store.list() == []


async def test_concurrent_joins_and_leaves_of_new_community(store: CommunityStore) -> None:
    memberships = await asyncio.gather(
        *(store.join("crowd", "pw", ephemeral=True) for _ in range(200))
    )
    assert len(set(memberships)) == 1
    assert await store.list() == [Community("crowd", 200, False)]
    await asyncio.gather(*(store.leave(membership) for membership in memberships))
    assert await store.list() == []


async def test_concurrent_first_joins_with_different_passwords(store: CommunityStore) -> None:
    first, second = await asyncio.gather(
        store.join("c", "pw", ephemeral=True),
        store.join("c", "other", ephemeral=True),
        return_exceptions=True,
    )
    assert isinstance(first, Membership)
    assert isinstance(second, WrongCommunityPasswordError)
    assert await store.list() == [Community("c", 1, False)]


async def test_concurrent_joins_with_one_wrong_password(store: CommunityStore) -> None:
    await store.join("c", "pw", ephemeral=True)
    passwords = ["pw"] * 10 + ["wrong"]
    results = await asyncio.gather(
        *(store.join("c", password, ephemeral=True) for password in passwords),
        return_exceptions=True,
    )
    assert isinstance(results[-1], WrongCommunityPasswordError)
    assert all(isinstance(result, Membership) for result in results[:-1])
    assert await store.list() == [Community("c", 11, False)]


class GatedHasher(PasswordHasher):
    """Holds every verification until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(rounds=4)
        self.gate = asyncio.Event()

    async def verify(self, password: str, hashed: bytes, source: str = "") -> bool:
        await self.gate.wait()
        return await super().verify(password, hashed, source)


@pytest.fixture
def gated() -> Iterator[GatedHasher]:
    hasher = GatedHasher()
    yield hasher
    hasher.close()


async def start_join(store: CommunityStore, *, ephemeral: bool) -> asyncio.Future[Membership]:
    """A join of ``c`` with ``pw`` that is now waiting at the gate of its password check."""
    join = asyncio.ensure_future(store.join("c", "pw", ephemeral=ephemeral))
    await asyncio.sleep(0)
    assert not join.done()
    return join


async def test_delete_while_join_verifies(gated: GatedHasher, make_store: MakeStore) -> None:
    store = await make_store(gated)
    await store.create("c", "pw")
    join = await start_join(store, ephemeral=False)
    await store.delete("c")
    gated.gate.set()
    with pytest.raises(EphemeralCommunitiesDisabledError):
        await join
    assert await store.list() == []


async def test_delete_while_join_verifies_recreates_ephemeral(
    gated: GatedHasher, make_store: MakeStore
) -> None:
    store = await make_store(gated)
    await store.create("c", "pw")
    join = await start_join(store, ephemeral=True)
    await store.delete("c")
    gated.gate.set()
    await join
    assert await store.list() == [Community("c", 1, False)]


async def test_replace_while_join_verifies(gated: GatedHasher, make_store: MakeStore) -> None:
    store = await make_store(gated)
    await store.create("c", "pw")
    join = await start_join(store, ephemeral=True)
    await store.delete("c")
    await store.create("c", "new password")
    gated.gate.set()
    with pytest.raises(WrongCommunityPasswordError):  # checked again against the new community
        await join
    assert await store.list() == [Community("c", 0, True)]
