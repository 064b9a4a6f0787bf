"""bcrypt off the event loop, with remembered verdicts and shared in-flight checks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import bcrypt
import pytest

from weron.signaler.passwords import (
    KeyedVerifier,
    PasswordCheckBusyError,
    PasswordHasher,
    PasswordNULError,
    PasswordTooLongError,
)


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(rounds=4)
    yield hasher
    hasher.close()


def foreign_hash(password: bytes) -> bytes:
    """A hash this hasher has never seen (as a store written by another process would hold)."""
    return bcrypt.hashpw(password, bcrypt.gensalt(rounds=4, prefix=b"2a"))


async def test_hash_then_verify(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("secret")
    assert hashed.startswith(b"$2a$04$")
    assert bcrypt.checkpw(b"secret", hashed)  # a plain bcrypt hash, readable by Go too
    assert await hasher.verify("secret", hashed)
    assert not await hasher.verify("Secret", hashed)


async def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert await hasher.hash("secret") != await hasher.hash("secret")


async def test_verify_foreign_hash(hasher: PasswordHasher) -> None:
    hashed = foreign_hash("pässword".encode())
    assert await hasher.verify("pässword", hashed)
    assert not await hasher.verify("password", hashed)
    assert not await hasher.verify("", hashed)


async def test_hash_verdict_is_remembered(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("secret")
    assert hasher.computations == 1
    assert await hasher.verify("secret", hashed)
    assert hasher.computations == 1


async def test_repeated_verify_is_cached(hasher: PasswordHasher) -> None:
    hashed = foreign_hash(b"secret")
    for _ in range(3):
        assert await hasher.verify("secret", hashed)
        assert not await hasher.verify("wrong", hashed)
    assert hasher.computations == 2


async def test_concurrent_verifies_share_one_computation(hasher: PasswordHasher) -> None:
    hashed = foreign_hash(b"secret")
    verdicts = await asyncio.gather(*(hasher.verify("secret", hashed) for _ in range(50)))
    assert verdicts == [True] * 50
    assert hasher.computations == 1


async def test_password_too_long(hasher: PasswordHasher) -> None:
    longest = "x" * 72
    hashed = await hasher.hash(longest)
    assert await hasher.verify(longest, hashed)
    with pytest.raises(PasswordTooLongError):
        await hasher.hash(longest + "x")
    with pytest.raises(PasswordTooLongError):
        await hasher.verify(longest + "x", hashed)  # never truncated into a match
    with pytest.raises(PasswordTooLongError):
        await hasher.hash("é" * 37)  # 74 bytes: the limit counts UTF-8 bytes


async def test_busy_when_too_many_distinct_checks_in_flight() -> None:
    hasher = PasswordHasher(rounds=4, max_pending=1)
    try:
        hashed = foreign_hash(b"secret")
        first = asyncio.ensure_future(hasher.verify("secret", hashed))
        await asyncio.sleep(0)  # the first check is now in flight
        with pytest.raises(PasswordCheckBusyError):
            await hasher.verify("other", hashed)
        # The same pair joins the check in flight instead of being refused.
        assert await hasher.verify("secret", hashed)
        assert await first
        # Once nothing is in flight, distinct checks are accepted again.
        assert not await hasher.verify("other", hashed)
        assert hasher.computations == 2
    finally:
        hasher.close()


@pytest.mark.parametrize("stored", [b"", b"not a hash", b"$2a$04$short", b"$9z$04$" + b"a" * 53])
async def test_malformed_stored_hash_does_not_match(hasher: PasswordHasher, stored: bytes) -> None:
    assert await hasher.verify("secret", stored) is False


async def test_new_hashes_share_the_bound_with_checks() -> None:
    """A flood of new communities cannot queue bcrypt work without bound either."""
    hasher = PasswordHasher(rounds=4, max_pending=1)
    try:
        hashed = foreign_hash(b"secret")
        first = asyncio.ensure_future(hasher.verify("secret", hashed))
        await asyncio.sleep(0)
        with pytest.raises(PasswordCheckBusyError):
            await hasher.hash("new community")
        assert await first
        assert bcrypt.checkpw(b"new community", await hasher.hash("new community"))
    finally:
        hasher.close()


async def test_a_flooding_source_cannot_starve_another() -> None:
    """One worker: the flood's queued checks wait behind the honest source's, and the flood is
    refused beyond its own share while the honest source still gets in."""
    hasher = PasswordHasher(rounds=4, workers=1, max_pending=64, max_pending_per_source=4)
    try:
        hashed = foreign_hash(b"secret")
        finished: list[str] = []

        async def check(password: str, source: str) -> None:
            await hasher.verify(password, hashed, source)
            finished.append(source)

        flood = [asyncio.ensure_future(check(f"guess {n}", "flood")) for n in range(4)]
        await asyncio.sleep(0)
        with pytest.raises(PasswordCheckBusyError):
            await hasher.verify("guess 5", hashed, "flood")
        honest = asyncio.ensure_future(check("secret", "honest"))
        await asyncio.gather(*flood, honest)
        # Behind the flood's running job and at most one more of its turns, not its queue.
        assert finished.index("honest") <= 2
        assert finished[-1] == "flood"
    finally:
        hasher.close()


async def test_nul_in_password_is_refused(hasher: PasswordHasher) -> None:
    with pytest.raises(PasswordNULError):
        await hasher.hash("a\x00b")


def test_keyed_verifier() -> None:
    verifier = KeyedVerifier(b"k" * 32)
    made = verifier.make("c", "pw")
    assert verifier.matches("c", "pw", made)
    assert not verifier.matches("c", "PW", made)
    assert not verifier.matches("d", "pw", made)  # bound to its community
    assert not KeyedVerifier(b"x" * 32).matches("c", "pw", made)  # and to its key
    assert b"pw" not in made
    with pytest.raises(PasswordTooLongError):
        verifier.make("c", "x" * 73)  # the same limits as bcrypt, in every store
