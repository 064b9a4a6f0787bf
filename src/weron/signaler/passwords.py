"""Community passwords: bcrypt where hashes are shared, a keyed HMAC where they are not.

The original hashes on every join (~15 joins/s). PostgreSQL communities keep bcrypt ``$2a$``
(the database is shared with Go signalers); there a hash is computed only when a community is
created, a comparison only the first time a given password meets a given hash: results are
remembered under an HMAC of the password with a per-process random key (so the cache holds no
password), concurrent checks of the same pair share one computation, and all bcrypt work runs in
a small thread pool, taking turns between sources (:mod:`weron.signaler.fairness`) so that one
flooding source cannot starve the others. The in-memory store's verifiers never leave the
process (or its state file), so :class:`KeyedVerifier` does without bcrypt there.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import bcrypt

from weron.signaler.fairness import FairQueue, QueueFullError

MAX_PASSWORD_BYTES: Final = 72  # bcrypt's input limit; longer passwords are refused, not truncated
DEFAULT_ROUNDS: Final = 10  # Go's bcrypt.DefaultCost: hashes stay interchangeable with the original
_CACHE_SIZE: Final = 65_536

T = TypeVar("T")


class PasswordRefusedError(ValueError):
    """A password no store accepts: the client gets 400 with the reason."""


class PasswordTooLongError(PasswordRefusedError):
    def __init__(self) -> None:
        super().__init__(f"password longer than {MAX_PASSWORD_BYTES} bytes")


class PasswordCheckBusyError(RuntimeError):
    """Too many distinct unverified passwords are queued, in all or from this source: refuse
    rather than queue without bound."""

    def __init__(self) -> None:
        super().__init__("too many password checks in progress, retry later")


class PasswordNULError(PasswordRefusedError):
    def __init__(self) -> None:
        super().__init__("password holds a NUL character")


def _encode(password: str) -> bytes:
    """The bytes of ``password``; the limits bcrypt sets apply to every store alike."""
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise PasswordTooLongError
    if b"\0" in raw:
        raise PasswordNULError
    return raw


class KeyedVerifier:
    """Verifiers that are an HMAC-SHA256 of community and password under a secret key, about
    10,000 times cheaper than bcrypt. Enough where nobody sees a verifier without the key
    (one process, and its private state file); whoever gets both can test guesses fast."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def make(self, community: str, password: str) -> bytes:
        name = community.encode("utf-8")
        message = len(name).to_bytes(4, "big") + name + _encode(password)
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def matches(self, community: str, password: str, verifier: bytes) -> bool:
        return hmac.compare_digest(self.make(community, password), verifier)


class PasswordHasher:
    """Hashes and verifies passwords off the event loop, remembering verdicts."""

    def __init__(
        self,
        rounds: int = DEFAULT_ROUNDS,
        workers: int | None = None,
        max_pending: int = 64,
        max_pending_per_source: int = 8,
    ) -> None:
        self._rounds = rounds
        cpus = os.cpu_count() or 1
        self._workers = workers or max(1, cpus - 1)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="bcrypt")
        self._pepper = os.urandom(32)
        self._verdicts: OrderedDict[tuple[bytes, bytes], bool] = OrderedDict()
        self._in_flight: dict[tuple[bytes, bytes], asyncio.Future[bool]] = {}
        # Jobs wait here, not in the pool's FIFO queue, so that the next free worker serves
        # the source whose turn it is.
        self._queue: FairQueue[_Job[Any]] = FairQueue(max_pending_per_source, max_pending)
        self._running = 0
        self._closed = False
        self.computations = 0  # bcrypt operations actually run: for tests and metrics

    def _fingerprint(self, password: bytes) -> bytes:
        return hmac.new(self._pepper, password, hashlib.sha256).digest()

    def _remember(self, key: tuple[bytes, bytes], verdict: bool) -> None:
        self._verdicts[key] = verdict
        self._verdicts.move_to_end(key)
        if len(self._verdicts) > _CACHE_SIZE:
            self._verdicts.popitem(last=False)

    def _compute(self, work: Callable[[], T], source: str) -> asyncio.Future[T]:
        """Queue one bcrypt operation for ``source``. Synchronous, so that the allowance of the
        source and of the queue is checked before anything awaits."""
        result: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            self._queue.push(source, _Job(work, result))
        except QueueFullError:
            raise PasswordCheckBusyError from None
        self._start_jobs()
        return result

    def _start_jobs(self) -> None:
        while self._running < self._workers and (next_job := self._queue.pop()) is not None:
            source, job = next_job
            self._running += 1
            self.computations += 1
            running = asyncio.get_running_loop().run_in_executor(self._pool, job.work)
            running.add_done_callback(functools.partial(self._finished, source, job))

    def _finished(self, source: str, job: _Job[Any], running: asyncio.Future[Any]) -> None:
        self._running -= 1
        self._queue.done(source)
        if not job.result.done():
            if running.cancelled():
                job.result.cancel()
            elif (exc := running.exception()) is not None:
                job.result.set_exception(exc)
            else:
                job.result.set_result(running.result())
        if not self._closed:
            self._start_jobs()

    async def hash(self, password: str, source: str = "") -> bytes:
        """A new ``$2a$`` hash (the prefix Go writes) of ``password``."""
        raw = _encode(password)
        salt = bcrypt.gensalt(rounds=self._rounds, prefix=b"2a")
        hashed = await self._compute(functools.partial(bcrypt.hashpw, raw, salt), source)
        self._remember((hashed, self._fingerprint(raw)), True)
        return hashed

    async def verify(self, password: str, hashed: bytes, source: str = "") -> bool:
        """Whether ``password`` matches ``hashed``; the bcrypt work, if any, is ``source``'s."""
        raw = _encode(password)
        key = (hashed, self._fingerprint(raw))
        verdict = self._verdicts.get(key)
        if verdict is not None:
            self._verdicts.move_to_end(key)
            return verdict
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                self._check(key, self._compute(functools.partial(_checkpw, raw, hashed), source))
            )
            self._in_flight[key] = pending
        # Shielded: one impatient caller going away must not cancel the others' answer.
        return await asyncio.shield(pending)

    async def _check(self, key: tuple[bytes, bytes], computing: asyncio.Future[bool]) -> bool:
        try:
            verdict = await computing
            self._remember(key, verdict)
            return verdict
        finally:
            del self._in_flight[key]

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class _Job(Generic[T]):
    work: Callable[[], T]
    result: asyncio.Future[T]


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed stored hash never matches
        return False
