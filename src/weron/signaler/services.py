"""Configuration and the shared pieces every connection of one signaler uses."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from weron.log import get_logger
from weron.signaler.limits import DropReport, SourceLimit
from weron.signaler.management import ManagementAPI
from weron.signaler.metrics import Metrics
from weron.signaler.operations import OperationsAPI
from weron.signaler.relay import Relay
from weron.signaler.store import CommunityStore
from weron.signaler.web import WebFiles

log = get_logger(__name__)

MAX_MESSAGE_SIZE: Final = 1 << 20  # a signaling message is an SDP or a candidate: 1 MiB is ample
MAX_BACKLOG: Final = 8 << 20  # bytes queued for one member before it counts as too far behind
MAX_REQUEST_HEAD: Final = 16 << 10  # request line + headers
MAX_REQUEST_BODY: Final = 64 << 10  # management requests carry no body worth more
DROP_REPORT_INTERVAL: Final = 10.0  # seconds between log lines about dropped connections


@dataclass(slots=True)
class SignalerConfig:
    """Settings of :class:`weron.signaler.server.Signaler`, defaults as the CLI's."""

    heartbeat: float = 10.0
    cleanup: bool = False
    ephemeral_communities: bool = True
    api_username: str = "admin"
    api_password: str = ""
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    postgres_url: str = ""  # empty: communities in memory
    redis_url: str = ""  # empty: in-process broker
    redis_prefix: str = "weron:"
    max_message_size: int = MAX_MESSAGE_SIZE
    max_backlog: int = MAX_BACKLOG
    bcrypt_rounds: int = 10
    idle_timeout: float = 5.0  # before the upgrade: longest silence of a connection
    head_timeout: float = 10.0  # longest time to send a whole request (head, and body if any)
    max_source_connections: int = 256  # open connections per source address (IPv6: /64); 0: any
    state_file: str = ""  # empty: in-memory communities end with the process
    state_grace: float = 60.0  # how long restored ephemeral communities wait for their members
    web: bool = True  # serve the browser peer under /web/
    allowed_origins: tuple[str, ...] = ()  # browser origins allowed to join besides our own


@dataclass(slots=True)
class Services:
    config: SignalerConfig
    store: CommunityStore
    relay: Relay
    management: ManagementAPI
    operations: OperationsAPI
    metrics: Metrics
    sources: SourceLimit
    web: WebFiles | None = None  # None: the page is not served
    drops: DropReport = field(default_factory=lambda: DropReport(DROP_REPORT_INTERVAL))
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    transports: set[asyncio.Transport] = field(default_factory=set)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def forget_transport(self, transport: asyncio.Transport) -> None:
        self.transports.discard(transport)
        self._released.set()

    async def wait_idle(self) -> None:
        """Return once no connection and no background task is left (bound it with a timeout)."""
        while self.transports or self.tasks:
            self._released.clear()
            await self._released.wait()

    def dropped(self, reason: str, source: str) -> None:
        """A limit dropped a connection of ``source``: log it, with others, at most every
        :data:`DROP_REPORT_INTERVAL`."""
        self.metrics.dropped[reason] += 1
        loop = asyncio.get_running_loop()
        delay = self.drops.record(reason, source, loop.time())
        if delay is not None:
            loop.call_later(delay, self.report_drops)

    def report_drops(self) -> None:
        """Log the drops not reported yet, if any (also at shutdown)."""
        counts, sources = self.drops.take(asyncio.get_running_loop().time())
        if counts:
            log.warning("Dropped connections at a limit", sources=sources, **counts)

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run a connection's background work; kept referenced, errors logged, awaited at close."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._released.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "Internal error in connection task",
                task=task.get_name(),
                error=f"{type(exc).__name__}: {exc}",
            )
