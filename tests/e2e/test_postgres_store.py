"""The PostgreSQL community store against the machine's PostgreSQL: the store contract, and
what only it does (migrations, several instances on one database, cleanup after a crash)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import psycopg
import pytest

from tests.store_contract import (  # noqa: F401 (the contract's tests, run here)
    MakeStore,
    test_concurrent_creates_make_one_community,
    test_concurrent_first_joins_with_different_passwords,
    test_concurrent_joins_and_leaves_of_new_community,
    test_concurrent_joins_with_one_wrong_password,
    test_create_existing,
    test_delete,
    test_delete_unknown,
    test_delete_while_join_verifies,
    test_delete_while_join_verifies_recreates_ephemeral,
    test_ephemeral_communities_disabled,
    test_first_join_creates_ephemeral_community,
    test_last_leave_removes_ephemeral_community,
    test_leave_of_unknown_community_is_ignored,
    test_old_membership_does_not_touch_recreated_community,
    test_persistent_community_stays_after_last_leave,
    test_replace_while_join_verifies,
    test_second_join_with_right_password,
    test_wrong_password,
)
from weron.community import Community
from weron.signaler.passwords import PasswordHasher
from weron.signaler.store import (
    CommunityNotFoundError,
    CommunityStore,
    Membership,
    StoreUnavailableError,
)
from weron.signaler.store.postgres import MIGRATIONS, PostgresStore


@pytest.fixture
async def make_store(postgres_url: str) -> AsyncIterator[MakeStore]:
    """Opened stores on this test's database: each one a signaler instance of its own."""
    opened: list[PostgresStore] = []

    async def make(hasher: PasswordHasher) -> CommunityStore:
        store = PostgresStore(postgres_url, hasher)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def test_concurrent_instances_apply_migrations_once(
    make_store: MakeStore, hasher: PasswordHasher, postgres_url: str
) -> None:
    await asyncio.gather(*(make_store(hasher) for _ in range(4)))
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cursor = await conn.execute("SELECT version FROM weron_migrations ORDER BY version")
        assert [version for (version,) in await cursor.fetchall()] == list(
            range(1, len(MIGRATIONS) + 1)
        )


async def test_newer_schema_is_refused(
    make_store: MakeStore, hasher: PasswordHasher, postgres_url: str
) -> None:
    await make_store(hasher)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO weron_migrations (version) VALUES (99)")
    with pytest.raises(StoreUnavailableError, match="version 99, newer than this signaler"):
        await make_store(hasher)


async def test_unreachable_database_is_a_clear_error(hasher: PasswordHasher) -> None:
    store = PostgresStore("postgres://weron:secret@127.0.0.1:1/nowhere", hasher)
    with pytest.raises(StoreUnavailableError) as caught:
        await store.open()
    message = str(caught.value)
    assert "cannot use PostgreSQL at postgres://weron:***@127.0.0.1:1/nowhere" in message
    assert "secret" not in message


async def test_counts_exact_with_concurrent_joins_and_leaves_on_two_instances(
    make_store: MakeStore, hasher: PasswordHasher
) -> None:
    first, second = await make_store(hasher), await make_store(hasher)
    await first.create("persistent", "pw")
    names = ["persistent", "shared-a", "shared-b"]
    rng = random.Random(6)

    async def visit(index: int) -> Membership:
        store = (first, second)[index % 2]
        membership = await store.join(names[index % 3], "pw", ephemeral=True)
        await asyncio.sleep(rng.random() * 0.05)
        return membership

    memberships = await asyncio.gather(*(visit(n) for n in range(300)))
    assert await first.list() == [
        Community("persistent", 100, True),
        Community("shared-a", 100, False),
        Community("shared-b", 100, False),
    ]
    await asyncio.gather(
        *((first, second)[n % 2].leave(membership) for n, membership in enumerate(memberships))
    )
    assert await second.list() == [Community("persistent", 0, True)]


async def lock_released(url: str, instance: int) -> None:
    """Wait until PostgreSQL has ended the dead instance's session (it does so on its own
    after the connection closes): only then is the instance dead for everyone."""
    async with await psycopg.AsyncConnection.connect(url) as conn, asyncio.timeout(30):
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                (instance,),
            )
            row = await cursor.fetchone()
            if row is not None and row[0] == 0:
                return
            await asyncio.sleep(0.02)


async def test_cleanup_removes_what_a_dead_instance_left_and_keeps_live_counts(
    make_store: MakeStore, hasher: PasswordHasher, postgres_url: str
) -> None:
    dead, live = await make_store(hasher), await make_store(hasher)
    await live.create("persistent", "pw")
    for community in ("persistent", "persistent", "only-dead", "shared"):
        await dead.join(community, "pw", ephemeral=True)
    kept = [
        await live.join(community, "pw", ephemeral=True) for community in ("persistent", "shared")
    ]
    assert isinstance(dead, PostgresStore)
    await dead.close()  # as a crash does: its lock goes, its members' counts stay
    await lock_released(postgres_url, dead.instance)
    assert await live.list() == [
        Community("only-dead", 1, False),
        Community("persistent", 3, True),
        Community("shared", 2, False),
    ]
    restarted = await make_store(hasher)
    await restarted.cleanup()
    assert await live.list() == [Community("persistent", 1, True), Community("shared", 1, False)]
    for membership in kept:
        await live.leave(membership)
    assert await live.list() == [Community("persistent", 0, True)]
    await live.cleanup()  # nobody dead any more: changes nothing
    assert await live.list() == [Community("persistent", 0, True)]


async def test_a_repeated_leave_counts_once(make_store: MakeStore, hasher: PasswordHasher) -> None:
    """What a leave retried after its connection broke does when the first attempt had
    committed: nothing, because the membership it deletes is gone."""
    store = await make_store(hasher)
    first = await store.join("c", "pw", ephemeral=True)
    await store.join("c", "pw", ephemeral=True)
    await store.leave(first)
    await store.leave(first)
    assert await store.list() == [Community("c", 1, False)]


async def test_nul_in_a_name_never_reaches_the_database(
    make_store: MakeStore, hasher: PasswordHasher
) -> None:
    store = await make_store(hasher)
    with pytest.raises(CommunityNotFoundError):
        await store.delete("nul\x00")
