"""bcrypt for community passwords, without letting it make joins CPU-bound.

The original hashes on every join (~15 joins/s). Here a hash is computed only when a community
is created, a comparison only the first time a given password meets a given hash: results are
remembered under an HMAC of the password with a per-process random key (so the cache holds no
password), concurrent checks of the same pair share one computation, and all bcrypt work runs
in a small thread pool so the event loop keeps relaying while it runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import bcrypt

MAX_PASSWORD_BYTES: Final = 72  # bcrypt's input limit; longer passwords are refused, not truncated
DEFAULT_ROUNDS: Final = 10  # Go's bcrypt.DefaultCost: hashes stay interchangeable with the original
_CACHE_SIZE: Final = 65_536


class PasswordTooLongError(ValueError):
    def __init__(self) -> None:
        super().__init__(f"password longer than {MAX_PASSWORD_BYTES} bytes")


class PasswordCheckBusyError(RuntimeError):
    """Too many distinct unverified passwords are queued: refuse rather than queue without bound."""

    def __init__(self) -> None:
        super().__init__("too many password checks in progress, retry later")


def _encode(password: str) -> bytes:
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise PasswordTooLongError
    return raw


class PasswordHasher:
    """Hashes and verifies passwords off the event loop, remembering verdicts."""

    def __init__(
        self,
        rounds: int = DEFAULT_ROUNDS,
        workers: int | None = None,
        max_pending: int = 64,
    ) -> None:
        self._rounds = rounds
        cpus = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(
            max_workers=workers or max(1, cpus - 1), thread_name_prefix="bcrypt"
        )
        self._pepper = os.urandom(32)
        self._verdicts: OrderedDict[tuple[bytes, bytes], bool] = OrderedDict()
        self._in_flight: dict[tuple[bytes, bytes], asyncio.Future[bool]] = {}
        self._max_pending = max_pending
        self._queued = 0  # bcrypt operations waiting for or running in the pool
        self.computations = 0  # bcrypt operations actually run: for tests and metrics

    def _fingerprint(self, password: bytes) -> bytes:
        return hmac.new(self._pepper, password, hashlib.sha256).digest()

    def _remember(self, key: tuple[bytes, bytes], verdict: bool) -> None:
        self._verdicts[key] = verdict
        self._verdicts.move_to_end(key)
        if len(self._verdicts) > _CACHE_SIZE:
            self._verdicts.popitem(last=False)

    def _reserve(self) -> None:
        """Claim a place for one bcrypt operation, synchronously, before scheduling it: refuse
        when ``max_pending`` already wait, so a flood of new communities or wrong passwords
        cannot queue work without bound."""
        if self._queued >= self._max_pending:
            raise PasswordCheckBusyError
        self._queued += 1

    async def _compute[T](self, function: Callable[[bytes, bytes], T], raw: bytes, arg: bytes) -> T:
        """Run one reserved bcrypt operation in the pool."""
        self.computations += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, raw, arg)
        finally:
            self._queued -= 1

    async def hash(self, password: str) -> bytes:
        """A new ``$2a$`` hash (the prefix Go writes) of ``password``."""
        raw = _encode(password)
        salt = bcrypt.gensalt(rounds=self._rounds, prefix=b"2a")
        self._reserve()
        hashed = await self._compute(bcrypt.hashpw, raw, salt)
        self._remember((hashed, self._fingerprint(raw)), True)
        return hashed

    async def verify(self, password: str, hashed: bytes) -> bool:
        raw = _encode(password)
        key = (hashed, self._fingerprint(raw))
        verdict = self._verdicts.get(key)
        if verdict is not None:
            self._verdicts.move_to_end(key)
            return verdict
        pending = self._in_flight.get(key)
        if pending is None:
            self._reserve()
            pending = asyncio.ensure_future(self._check(key, raw, hashed))
            self._in_flight[key] = pending
        # Shielded: one impatient caller going away must not cancel the others' answer.
        return await asyncio.shield(pending)

    async def _check(self, key: tuple[bytes, bytes], raw: bytes, hashed: bytes) -> bool:
        try:
            verdict = await self._compute(_checkpw, raw, hashed)
            self._remember(key, verdict)
            return verdict
        finally:
            del self._in_flight[key]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed stored hash never matches
        return False
