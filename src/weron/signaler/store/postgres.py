"""PostgreSQL community store: several signaler instances share one database.

Counts stay exact under concurrent joins and leaves on many instances because every change is
one atomic statement: ``UPDATE ... SET clients = clients + 1 ... RETURNING``, never a read
followed by a write. Besides the total in ``communities.clients``, each instance counts its own
members in ``instance_clients``; an instance holds a PostgreSQL advisory lock for as long as it
lives (the server drops it once it notices the instance's connection is gone: at once after a
crash on a live host, SIGKILL included), so ``--cleanup`` can tell the counts of crashed
instances from those of running ones and remove only the former. A join of a community this
instance knows is one statement (``_known``).

Every join also leaves a row in ``memberships`` under a random token, which its leave deletes:
a count change whose connection broke before the answer came (a restarting database) is retried
with the same token, and applies once whether or not the first attempt had committed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
from collections.abc import AsyncIterator, Collection, Coroutine
from typing import Any, Final

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from weron.log import get_logger, redact_url
from weron.signaler.passwords import PasswordHasher
from weron.signaler.store import (
    Community,
    CommunityExistsError,
    CommunityNotFoundError,
    EphemeralCommunitiesDisabledError,
    Membership,
    StoreUnavailableError,
    WrongCommunityPasswordError,
)
from weron.signaler.store.creation import CreationGate

log = get_logger(__name__)

# Advisory lock keys: one bigint key serializes migrations; the (class, instance) pair of int4
# keys marks a live instance. Both spaces are separate in PostgreSQL.
_MIGRATION_LOCK: Final = 0x7765726F6E5F6D67  # "weron_mg"
_INSTANCE_LOCK_CLASS: Final = 0x7765726F  # "wero"
_CONNECT_TIMEOUT: Final = 5  # seconds, for the first connection and each pooled one
_CHECK_TIMEOUT: Final = 2.0
_LEASE_CHECK_INTERVAL: Final = 5.0
_POOL_MAX: Final = 10
_KNOWN_COMMUNITIES: Final = 65_536
_POOL_WAIT: Final = 5.0  # a join or leave waits this long for a connection, then fails
_API_WAIT: Final = 2.0  # a management request, this long: then it answers 503 with the reason
_JOIN_RETRY_FOR: Final = 5.0  # a join retries this long while the database is unreachable
_LEAVE_RETRY_FOR: Final = 600.0  # a leave, this long: a lost leave keeps a count forever
_RETRY_BACKOFF: Final = (0.1, 2.0)  # first and longest pause between retries, doubling

# Versioned migrations, applied in order on start; never edit one that has shipped, add one.
MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: communities, and how many clients each instance counts in them.
    """
    CREATE SEQUENCE community_generations;
    CREATE TABLE communities (
        id text PRIMARY KEY,
        password text NOT NULL,
        clients bigint NOT NULL DEFAULT 0 CHECK (clients >= 0),
        persistent boolean NOT NULL,
        generation bigint NOT NULL
    );
    CREATE TABLE instance_clients (
        instance bigint NOT NULL,
        community text NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
        generation bigint NOT NULL,
        clients bigint NOT NULL CHECK (clients >= 0),
        PRIMARY KEY (instance, community)
    );
    CREATE INDEX instance_clients_community ON instance_clients (community);
    """,
    # 2: one row per counted client, so that retried count changes apply once.
    """
    CREATE TABLE memberships (
        token bigint PRIMARY KEY,
        instance bigint NOT NULL,
        community text NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
        generation bigint NOT NULL
    );
    CREATE INDEX memberships_community ON memberships (community);
    CREATE INDEX memberships_instance ON memberships (instance);
    """,
)

_SELECT: Final = "SELECT password, generation FROM communities WHERE id = %(id)s"

# Lock order: the memberships row (a token only one join uses), then the communities row, then
# the instance_clients row. The membership goes in first and with ON CONFLICT, so that a retry
# racing its own first attempt waits for it and then counts nothing. A row comes back if the
# client is counted, by this attempt or an earlier one.
_JOIN_EXISTING: Final = """
WITH m AS (
    INSERT INTO memberships (token, instance, community, generation)
    SELECT %(token)s, %(instance)s, id, generation FROM communities
    WHERE id = %(id)s AND generation = %(generation)s
    FOR KEY SHARE  -- waits for a concurrent delete, then skips the row instead of failing
    ON CONFLICT (token) DO NOTHING
    RETURNING community
), c AS (
    UPDATE communities SET clients = clients + 1
    WHERE id IN (SELECT community FROM m) AND generation = %(generation)s
    RETURNING id
), i AS (
    INSERT INTO instance_clients (instance, community, generation, clients)
    SELECT %(instance)s, id, %(generation)s, 1 FROM c
    ON CONFLICT (instance, community) DO UPDATE SET clients = instance_clients.clients + 1
    RETURNING 1
)
SELECT 1 FROM c UNION ALL SELECT 1 FROM memberships WHERE token = %(token)s
"""

_JOIN_NEW: Final = """
WITH c AS (
    INSERT INTO communities (id, password, clients, persistent, generation)
    VALUES (%(id)s, %(password)s, 1, false, nextval('community_generations'))
    ON CONFLICT (id) DO NOTHING
    RETURNING id, generation
), m AS (
    INSERT INTO memberships (token, instance, community, generation)
    SELECT %(token)s, %(instance)s, id, generation FROM c
    RETURNING 1
), i AS (
    INSERT INTO instance_clients (instance, community, generation, clients)
    SELECT %(instance)s, id, generation, 1 FROM c
    RETURNING 1
)
SELECT generation FROM c
"""

# A leave deletes its join's membership and counts only if there was one: a retried leave, or
# the late leave of an instance a cleanup took for dead (its connection was cut), changes nothing.
_LEAVE: Final = """
WITH m AS (
    DELETE FROM memberships WHERE token = %(token)s AND instance = %(instance)s
    RETURNING community, generation
), c AS (
    UPDATE communities SET clients = clients - 1
    FROM m
    WHERE id = m.community AND communities.generation = m.generation AND clients > 0
    RETURNING id, clients, persistent
), i AS (
    UPDATE instance_clients SET clients = instance_clients.clients - 1
    FROM c
    WHERE instance = %(instance)s AND community = c.id AND instance_clients.clients > 0
    RETURNING 1
)
SELECT clients, persistent FROM c
"""

# An ephemeral community nobody is counted in is garbage, whatever its generation: this also
# serves leaves that cannot know it (a retried one, the undoing of a failed join).
_REMOVE_IF_EMPTY: Final = """
DELETE FROM communities c
WHERE id = %(id)s AND clients = 0 AND NOT persistent
  AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.community = c.id)
"""

_CREATE: Final = """
INSERT INTO communities (id, password, clients, persistent, generation)
VALUES (%(id)s, %(password)s, 0, true, nextval('community_generations'))
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# The communities of dead instances are locked first (join and leave lock in that order too),
# then their counts are subtracted and their rows removed.
_CLEANUP: Final = """
WITH live AS (
    SELECT objid::bigint AS instance FROM pg_locks
    WHERE locktype = 'advisory' AND classid = %(class)s::oid AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
), locked AS (
    SELECT id FROM communities
    WHERE id IN (
        SELECT community FROM instance_clients
        WHERE instance NOT IN (SELECT instance FROM live)
    )
    ORDER BY id
    FOR UPDATE
), gone AS (
    DELETE FROM memberships
    WHERE instance NOT IN (SELECT instance FROM live)
      AND community IN (SELECT id FROM locked)
), dead AS (
    DELETE FROM instance_clients
    WHERE instance NOT IN (SELECT instance FROM live)
      AND community IN (SELECT id FROM locked)
    RETURNING community, generation, clients
), totals AS (
    SELECT community, generation, sum(clients) AS clients FROM dead GROUP BY 1, 2
)
UPDATE communities c SET clients = greatest(c.clients - t.clients, 0)
FROM totals t
WHERE c.id = t.community AND c.generation = t.generation
"""

_REMOVE_EMPTY_EPHEMERAL: Final = """
DELETE FROM communities c
WHERE NOT persistent AND clients = 0
  AND NOT EXISTS (SELECT 1 FROM instance_clients i WHERE i.community = c.id AND i.clients > 0)
"""


class _Backoff:
    """Pauses between retries, doubling, until ``duration`` has passed."""

    def __init__(self, duration: float) -> None:
        self._deadline = asyncio.get_running_loop().time() + duration
        self._pause = _RETRY_BACKOFF[0]

    async def pause(self, open_: bool) -> bool:
        """Wait before the next attempt; ``False`` when there is none (time is up, or the store
        is closed)."""
        loop = asyncio.get_running_loop()
        if not open_ or loop.time() + self._pause > self._deadline:
            return False
        await asyncio.sleep(self._pause)
        self._pause = min(self._pause * 2, _RETRY_BACKOFF[1])
        return True


def _unavailable(url: str, exc: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"cannot use PostgreSQL at {redact_url(url)}: {exc}".strip())


class PostgresStore:
    """Communities in PostgreSQL; ``url`` is a libpq URL (``postgres://user@host/db``)."""

    shared = True

    def __init__(self, url: str, hasher: PasswordHasher) -> None:
        self._url = url
        self._hasher = hasher
        self._gate = CreationGate()
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._lease: psycopg.AsyncConnection[Any] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        # Password hash and generation of communities seen here: a join of a known community
        # is one statement. A community's hash never changes within a generation, and the
        # count only changes if the generation still matches, so a stale entry costs a retry.
        self._known: collections.OrderedDict[str, tuple[bytes, int]] = collections.OrderedDict()
        self.instance = 0  # this instance's id in instance_clients, chosen on open
        self._background: set[asyncio.Task[None]] = set()

    # Lifecycle

    async def open(self) -> None:
        try:
            self._lease = await self._connect_lease()
            await _migrate(self._lease)
            self.instance = await _take_instance_lock(self._lease)
            self._pool = AsyncConnectionPool(
                self._url,
                min_size=1,
                max_size=_POOL_MAX,
                timeout=_POOL_WAIT,
                # A connection the database dropped (a restart) is replaced, not handed out.
                check=AsyncConnectionPool.check_connection,
                kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT},
                open=False,
                name="weron-store",
            )
            await self._pool.open(wait=True, timeout=_CONNECT_TIMEOUT * 2)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            await self.close()
            raise _unavailable(self._url, exc) from None
        self._lease_task = asyncio.get_running_loop().create_task(
            self._keep_lease(), name="postgres instance lease"
        )
        log.info("Using PostgreSQL", url=redact_url(self._url), instance=self.instance)

    def draining(self) -> None:
        return None

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
            self._lease_task = None
        if self._pool is not None:
            if self.instance and not self._pool.closed:
                # Our members have left by now; drop our (zero) rows so they do not linger.
                with contextlib.suppress(psycopg.Error, PoolTimeout):
                    async with self._pool.connection(timeout=_CHECK_TIMEOUT) as conn:
                        await conn.execute(
                            "DELETE FROM instance_clients WHERE instance = %s AND clients = 0",
                            (self.instance,),
                        )
            await self._pool.close()
            self._pool = None
        if self._lease is not None:
            await self._lease.close()
            self._lease = None

    async def _connect_lease(self) -> psycopg.AsyncConnection[Any]:
        """The connection holding the instance lock. Server-side keepalives make PostgreSQL
        notice within about half a minute that an instance vanished without closing it (host
        or network gone), and so drop its lock; a crash on a live host is noticed at once."""
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
        )
        await conn.execute(
            "SELECT set_config('tcp_keepalives_idle', '10', false), "
            "set_config('tcp_keepalives_interval', '5', false), "
            "set_config('tcp_keepalives_count', '3', false)"
        )
        return conn

    async def _keep_lease(self) -> None:
        """Hold the instance lock; if its connection breaks, reconnect and take it again."""
        while True:
            await asyncio.sleep(_LEASE_CHECK_INTERVAL)
            try:
                assert self._lease is not None
                await self._lease.execute("SELECT 1")
                continue
            except psycopg.Error as exc:
                log.warning("Lost the PostgreSQL instance lock connection", error=str(exc))
            with contextlib.suppress(psycopg.Error):
                assert self._lease is not None
                await self._lease.close()
            try:
                self._lease = await self._connect_lease()
                await self._lease.execute(
                    "SELECT pg_advisory_lock(%s, %s)", (_INSTANCE_LOCK_CLASS, self.instance)
                )
                log.info("Took the PostgreSQL instance lock again", instance=self.instance)
            except (psycopg.Error, OSError) as exc:
                log.warning("Cannot reconnect to PostgreSQL yet", error=str(exc))

    @contextlib.asynccontextmanager
    async def _connection(
        self, wait: float = _POOL_WAIT
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection within ``wait`` seconds; the database being out of reach is a
        StoreUnavailableError."""
        if self._pool is None:
            raise StoreUnavailableError("the PostgreSQL store is not open")
        try:
            async with self._pool.connection(timeout=wait) as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise _unavailable(self._url, exc) from None

    async def _fetchone(
        self, query: Any, params: dict[str, Any], wait: float = _POOL_WAIT
    ) -> tuple[Any, ...] | None:
        async with self._connection(wait) as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchone()

    async def check(self) -> None:
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                await self._fetchone("SELECT 1", {})
        except TimeoutError:
            raise _unavailable(self._url, TimeoutError("no answer")) from None

    # Communities

    async def cleanup(self) -> None:
        for attempt in range(5):
            try:
                async with self._connection() as conn, conn.transaction():
                    await conn.execute(_CLEANUP, {"class": _INSTANCE_LOCK_CLASS})
                    await conn.execute(_REMOVE_EMPTY_EPHEMERAL)
                return
            except psycopg.errors.DeadlockDetected:
                log.debug("Cleanup met a concurrent join or leave, retrying", attempt=attempt)
        raise StoreUnavailableError("cleanup kept deadlocking with concurrent joins")

    async def join(
        self, community: str, password: str, *, ephemeral: bool, source: str = ""
    ) -> Membership:
        token = secrets.randbits(63)
        backoff = _Backoff(_JOIN_RETRY_FOR)
        while True:
            try:
                return await self._join(community, password, ephemeral, source, token)
            except StoreUnavailableError as exc:
                if not await backoff.pause(self._pool is not None):
                    # The count may have changed before the connection broke: undo it, if so.
                    self._spawn(self.leave(Membership(community, 0, token)), "undo a join")
                    raise
                log.debug("PostgreSQL unavailable, retrying a join", error=str(exc))

    async def _join(
        self, community: str, password: str, ephemeral: bool, source: str, token: int
    ) -> Membership:
        """One attempt; every statement in it is safe to repeat under the same ``token``."""
        while True:
            known = self._known.get(community)
            cached = known is not None
            if known is None:
                row = await self._fetchone(_SELECT, {"id": community})
                if row is None:
                    if not ephemeral:
                        raise EphemeralCommunitiesDisabledError(community)
                    membership = await self._create_ephemeral(community, password, source, token)
                    if membership is None:
                        continue  # created elsewhere meanwhile: check against that one
                    return membership
                known = (row[0].encode("ascii"), row[1])
                self._remember(community, known)
            stored_hash, generation = known
            if not await self._hasher.verify(password, stored_hash, source):
                if cached:
                    self._known.pop(community, None)  # maybe replaced since: ask the database
                    continue
                raise WrongCommunityPasswordError(community)
            counted = await self._fetchone(
                _JOIN_EXISTING,
                {
                    "id": community,
                    "generation": generation,
                    "instance": self.instance,
                    "token": token,
                },
            )
            if counted is not None:
                return Membership(community, generation, token)
            self._known.pop(community, None)  # deleted or replaced: start over

    async def _create_ephemeral(
        self, community: str, password: str, source: str, token: int
    ) -> Membership | None:
        """Create ``community`` with one client; ``None`` if it exists by now."""
        if await self._gate.wait(community):
            return None
        async with self._gate.creating(community):
            password_hash = await self._hasher.hash(password, source)
            created = await self._fetchone(
                _JOIN_NEW,
                {
                    "id": community,
                    "password": password_hash.decode("ascii"),
                    "instance": self.instance,
                    "token": token,
                },
            )
        if created is None:
            return None
        self._remember(community, (password_hash, created[0]))
        return Membership(community, created[0], token)

    def _remember(self, community: str, known: tuple[bytes, int]) -> None:
        self._known[community] = known
        self._known.move_to_end(community)
        if len(self._known) > _KNOWN_COMMUNITIES:
            self._known.popitem(last=False)

    async def leave(self, membership: Membership) -> None:
        params = {"token": membership.token, "instance": self.instance}
        backoff = _Backoff(_LEAVE_RETRY_FOR)
        retried = False
        while True:
            try:
                async with self._connection() as conn:
                    cursor = await conn.execute(_LEAVE, params)
                    row = await cursor.fetchone()
                    # Retried, the leave may have counted already: remove an empty ephemeral
                    # community anyway (the statement checks that it is).
                    if retried or (row is not None and row[0] == 0 and not row[1]):
                        await conn.execute(_REMOVE_IF_EMPTY, {"id": membership.community})
                return
            except StoreUnavailableError as exc:
                if not await backoff.pause(self._pool is not None):
                    raise
                if not retried:
                    log.info("PostgreSQL unavailable, retrying a leave", error=str(exc))
                retried = True

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("Could not undo a join that failed", error=str(exc))

    async def create(self, community: str, password: str, source: str = "") -> Community:
        if await self._fetchone(_SELECT, {"id": community}, _API_WAIT) is not None:
            raise CommunityExistsError(community)
        password_hash = await self._hasher.hash(password, source)
        created = await self._fetchone(
            _CREATE, {"id": community, "password": password_hash.decode("ascii")}, _API_WAIT
        )
        if created is None:
            raise CommunityExistsError(community)
        return Community(community, 0, True)

    async def delete(self, community: str) -> None:
        if "\0" in community:
            raise CommunityNotFoundError(community)  # text cannot hold NUL: no such row
        deleted = await self._fetchone(
            "DELETE FROM communities WHERE id = %(id)s RETURNING id", {"id": community}, _API_WAIT
        )
        if deleted is None:
            raise CommunityNotFoundError(community)

    async def list(self) -> list[Community]:
        async with self._connection(_API_WAIT) as conn:
            cursor = await conn.execute(
                "SELECT id, clients, persistent FROM communities ORDER BY id"
            )
            return [
                Community(id_, clients, persistent) async for id_, clients, persistent in cursor
            ]

    async def generations(self, communities: Collection[str]) -> dict[str, int]:
        async with self._connection(_API_WAIT) as conn:
            cursor = await conn.execute(
                "SELECT id, generation FROM communities WHERE id = ANY(%(ids)s)",
                {"ids": list(communities)},
            )
            return {id_: generation async for id_, generation in cursor}


async def _migrate(conn: psycopg.AsyncConnection[Any]) -> None:
    """Apply the migrations this database lacks, one instance at a time."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS weron_migrations ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT version FROM weron_migrations")
        applied = {version for (version,) in await cursor.fetchall()}
        newest = max(applied, default=0)
        if newest > len(MIGRATIONS):
            raise psycopg.DataError(
                f"the database schema is at version {newest}, newer than this signaler knows "
                f"({len(MIGRATIONS)}): upgrade the signaler"
            )
        for version, migration in enumerate(MIGRATIONS, start=1):
            if version in applied:
                continue
            await conn.execute(migration.encode())
            await conn.execute("INSERT INTO weron_migrations (version) VALUES (%s)", (version,))
            log.info("Applied database migration", version=version)


async def _take_instance_lock(conn: psycopg.AsyncConnection[Any]) -> int:
    """A random instance id whose advisory lock this connection now holds."""
    while True:
        instance = secrets.randbelow((1 << 31) - 1) + 1
        cursor = await conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (_INSTANCE_LOCK_CLASS, instance)
        )
        row = await cursor.fetchone()
        if row is not None and row[0]:
            return instance
