"""The in-memory community store: the store contract, plus what only it does (its state file).

The contract's tests of joins racing a bcrypt check do not apply: its checks do not await."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

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
    test_ephemeral_communities_disabled,
    test_first_join_creates_ephemeral_community,
    test_last_leave_removes_ephemeral_community,
    test_leave_of_unknown_community_is_ignored,
    test_old_membership_does_not_touch_recreated_community,
    test_persistent_community_stays_after_last_leave,
    test_second_join_with_right_password,
    test_wrong_password,
)

from weron.community import Community
from weron.signaler.passwords import PasswordHasher
from weron.signaler.store import CommunityStore, StoreUnavailableError, WrongCommunityPasswordError
from weron.signaler.store.memory import MemoryStore


@pytest.fixture
def make_store() -> MakeStore:
    async def make(_hasher: PasswordHasher) -> CommunityStore:
        return MemoryStore()

    return make


async def test_cleanup(store: CommunityStore) -> None:
    await store.create("p", "pw")
    await store.join("p", "pw", ephemeral=True)
    await store.join("p", "pw", ephemeral=True)
    await store.join("e", "pw", ephemeral=True)
    await store.cleanup()
    assert await store.list() == [Community("p", 0, True)]


async def test_close_forgets_everything(store: CommunityStore) -> None:
    await store.create("p", "pw")
    await store.close()
    assert await store.list() == []


async def opened(path: Path, grace: float = 60.0) -> MemoryStore:
    store = MemoryStore(path, grace)
    await store.open()
    return store


async def test_state_gives_communities_back_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = await opened(path)
    membership = await first.join("c", "pw", ephemeral=True)
    await first.create("p", "persistent pw")
    first.draining()  # shutting down: the members leave because the signaler goes
    await first.leave(membership)
    await first.close()

    second = await opened(path)
    assert await second.list() == [Community("c", 0, False), Community("p", 0, True)]
    with pytest.raises(WrongCommunityPasswordError):
        await second.join("c", "squatter's pw", ephemeral=True)
    await second.join("c", "pw", ephemeral=True)
    await second.join("p", "persistent pw", ephemeral=False)
    await second.close()


async def test_restored_community_expires_after_grace(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = await opened(path)
    await first.join("c", "pw", ephemeral=True)
    await first.close()
    second = await opened(path, grace=0.0)
    await second.join("c", "new owner's pw", ephemeral=True)  # nobody came back in time
    assert await second.list() == [Community("c", 1, False)]
    await second.close()


async def test_community_that_emptied_before_the_restart_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = await opened(path)
    await first.leave(await first.join("c", "pw", ephemeral=True))
    await first.close()
    second = await opened(path)
    assert await second.list() == []
    await second.close()


async def test_state_file_is_private_and_holds_no_password(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = await opened(path)
    await store.join("c", "correct horse", ephemeral=True)
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"correct horse" not in path.read_bytes()
    assert [entry["id"] for entry in json.loads(path.read_bytes())["communities"]] == ["c"]
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind


async def test_missing_state_file_is_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = await opened(path)
    assert path.exists()  # written at once: a file that cannot be written fails the start
    assert await store.list() == []
    await store.close()


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 1}', b'{"version": 9}', b"\xff"])
async def test_corrupt_state_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StoreUnavailableError, match=r"state\.json is corrupt.*move it away"):
        await opened(path)
    assert path.read_bytes() == content  # left for the operator to look at


async def test_unwritable_state_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="cannot write"):
        await opened(tmp_path / "missing directory" / "state.json")
