"""The in-memory community store: the store contract, plus what only it does."""

from __future__ import annotations

import asyncio

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
from weron.signaler.store import CommunityStore, WrongPasswordError
from weron.signaler.store.memory import MemoryStore


@pytest.fixture
def make_store() -> MakeStore:
    async def make(hasher: PasswordHasher) -> CommunityStore:
        return MemoryStore(hasher)

    return make


async def test_cleanup(store: CommunityStore) -> None:
    await store.create("p", "pw")
    await store.join("p", "pw", ephemeral=True)
    await store.join("p", "pw", ephemeral=True)
    await store.join("e", "pw", ephemeral=True)
    await store.cleanup()
    assert await store.list() == [Community("p", 0, True)]


async def test_one_hash_for_a_crowd_of_first_joins(
    store: CommunityStore, hasher: PasswordHasher
) -> None:
    await asyncio.gather(*(store.join("crowd", "pw", ephemeral=True) for _ in range(200)))
    assert hasher.computations == 1  # one hash, and the others' checks hit its verdict


async def test_first_joins_with_different_passwords_cost_a_hash_and_a_check(
    store: CommunityStore, hasher: PasswordHasher
) -> None:
    results = await asyncio.gather(
        store.join("c", "pw", ephemeral=True),
        store.join("c", "other", ephemeral=True),
        return_exceptions=True,
    )
    assert isinstance(results[1], WrongPasswordError)
    assert hasher.computations == 2  # the first join's hash, the second join's check


async def test_close_forgets_everything(store: CommunityStore) -> None:
    await store.create("p", "pw")
    await store.close()
    assert await store.list() == []
