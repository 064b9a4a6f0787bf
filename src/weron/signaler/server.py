"""The signaling server: HTTP/1.1 and WebSocket on one listening port
(docs/wire-protocol.md#signaler-endpoints and #relay)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from pathlib import Path
from typing import Final

from weron.extras import needs_extra
from weron.log import get_logger, redact_url
from weron.signaler.auth import AuthUnavailableError, BasicAuth, ManagementAuth
from weron.signaler.broker import Broker, BrokerUnavailableError
from weron.signaler.broker.local import LocalBroker
from weron.signaler.connection import SignalerConnection
from weron.signaler.limits import SourceLimit
from weron.signaler.management import ManagementAPI
from weron.signaler.member import WebSocketMember
from weron.signaler.metrics import Metrics
from weron.signaler.operations import OperationsAPI
from weron.signaler.origins import OriginError, normalize_origin
from weron.signaler.passwords import PasswordHasher
from weron.signaler.relay import Relay
from weron.signaler.resync import resync_forever
from weron.signaler.services import Services, SignalerConfig
from weron.signaler.store import CommunityStore, StoreUnavailableError
from weron.signaler.store.memory import MemoryStore
from weron.signaler.web import WebFiles

log = get_logger(__name__)
_SHUTDOWN_GRACE: Final = 3.0


class ConfigurationError(ValueError):
    """The signaler cannot start with these settings; the message says why."""


class StartError(RuntimeError):
    """A service the signaler depends on (database, Redis, OIDC issuer) cannot be reached."""


def _check_url(url: str, schemes: tuple[str, ...], flag: str, example: str) -> str:
    try:
        scheme = urllib.parse.urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in schemes:
        raise ConfigurationError(
            f"{flag} {redact_url(url)!r} is not a {schemes[0]}:// URL (e.g. {example})"
        )
    return url


def _store(config: SignalerConfig, hasher: PasswordHasher) -> CommunityStore:
    if not config.postgres_url.strip():
        state_file = config.state_file.strip()
        return MemoryStore(Path(state_file) if state_file else None, config.state_grace)
    if config.state_file.strip():
        raise ConfigurationError(
            "--state is for in-memory communities: PostgreSQL keeps them by itself"
        )
    url = _check_url(
        config.postgres_url.strip(),
        ("postgres", "postgresql"),
        "--postgres-url (DATABASE_URL)",
        "postgres://user@localhost:5432/weron_communities",
    )
    with needs_extra("server", "--postgres-url (DATABASE_URL)"):
        from weron.signaler.store.postgres import PostgresStore
    return PostgresStore(url, hasher)


def _broker(config: SignalerConfig) -> Broker:
    if not config.redis_url.strip():
        return LocalBroker()
    url = _check_url(
        config.redis_url.strip(),
        ("redis", "rediss", "unix"),
        "--redis-url (REDIS_URL)",
        "redis://localhost:6379/1",
    )
    with needs_extra("server", "--redis-url (REDIS_URL)"):
        from weron.signaler.broker.redis import RedisBroker
    return RedisBroker(url, config.redis_prefix)


def _management_auth(config: SignalerConfig) -> ManagementAuth | None:
    issuer, client_id = config.oidc_issuer.strip(), config.oidc_client_id.strip()
    if issuer or client_id:
        if not (issuer and client_id):
            raise ConfigurationError(
                "OIDC needs both --oidc-issuer (OIDC_ISSUER) and --oidc-client-id (OIDC_CLIENT_ID)"
            )
        _check_url(issuer, ("https", "http"), "--oidc-issuer", "https://example.eu.auth0.com/")
        if config.api_password.strip():
            log.info("OIDC is configured: the API username and password are ignored")
        with needs_extra("server", "--oidc-issuer (OIDC_ISSUER)"):
            from weron.signaler.oidc import OIDCAuth
        return OIDCAuth(issuer, client_id)
    if not config.api_password.strip():
        log.info("API password not set, management API disabled")
        return None
    return BasicAuth(config.api_username, config.api_password)


class Signaler:
    """A running signaler. ``store`` and ``broker`` default to what the config names: PostgreSQL
    and Redis when their URLs are set, else in-memory and in-process."""

    def __init__(
        self,
        config: SignalerConfig | None = None,
        *,
        store: CommunityStore | None = None,
        broker: Broker | None = None,
    ) -> None:
        self.config = config if config is not None else SignalerConfig()
        try:
            self.config.allowed_origins = tuple(
                normalize_origin(origin) for origin in self.config.allowed_origins
            )
        except OriginError as exc:
            raise ConfigurationError(f"--allowed-origins: {exc}") from None
        self.hasher = PasswordHasher(rounds=self.config.bcrypt_rounds)
        self.store: CommunityStore = (
            store if store is not None else _store(self.config, self.hasher)
        )
        self.broker: Broker = broker if broker is not None else _broker(self.config)
        self.relay = Relay(self.broker)
        self.metrics = Metrics()
        self._auth = _management_auth(self.config)
        self._services = Services(
            config=self.config,
            store=self.store,
            relay=self.relay,
            management=ManagementAPI(self.store, self.broker, self._auth),
            operations=OperationsAPI(self.store, self.broker, self.relay, self.metrics),
            metrics=self.metrics,
            sources=SourceLimit(self.config.max_source_connections),
            web=WebFiles.load() if self.config.web else None,
        )
        self._server: asyncio.Server | None = None
        self._resync: asyncio.Task[None] | None = None

    async def start(self, host: str | None = None, port: int = 1337) -> None:
        """Open the store, broker and authenticator, then listen; ``host`` ``None`` means every
        interface. :class:`StartError` if the database, Redis or OIDC issuer is out of reach."""
        try:
            await self.store.open()
            if self.config.cleanup:
                await self.store.cleanup()
                log.info(
                    "Cleaned up after crashed instances: their client counts and ephemeral "
                    "communities are gone"
                )
            await self.broker.open(self.relay)
            if self._auth is not None:
                await self._auth.open()
        except (StoreUnavailableError, BrokerUnavailableError, AuthUnavailableError) as exc:
            await self.close()
            raise StartError(str(exc)) from None
        loop = asyncio.get_running_loop()
        if self.store.shared or self.broker.shared:
            self._resync = loop.create_task(
                resync_forever(self.store, self.relay), name="check members against the store"
            )
        self._server = await loop.create_server(
            lambda: SignalerConnection(self._services),
            host or None,
            port,
            reuse_address=True,
            backlog=1024,
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def close(self) -> None:
        """Graceful shutdown: stop listening, say goodbye to members, let counts settle."""
        if self._server is not None:
            self._server.close()
        self.store.draining()
        for member in self.relay.members():
            if isinstance(member, WebSocketMember):
                member.close(1001, "signaler shutting down")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SHUTDOWN_GRACE):
                await self._services.wait_idle()
        for transport in list(self._services.transports):
            transport.abort()
        if self._services.tasks:
            await asyncio.wait(list(self._services.tasks), timeout=_SHUTDOWN_GRACE)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), _SHUTDOWN_GRACE)
        self._services.report_drops()
        if self._auth is not None:
            await self._auth.close()
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
            self._resync = None
        await self.broker.close()
        await self.store.close()
        self.hasher.close()


def parse_listen_address(laddr: str, port_override: str | None = None) -> tuple[str | None, int]:
    """Go-style ``host:port`` (``:1337``, ``[::1]:1337``, ``0.0.0.0:80``), with ``$PORT``
    replacing the port as the original does."""
    host, separator, port_text = laddr.rpartition(":")
    if not separator:
        raise ConfigurationError(f"listening address {laddr!r} is not host:port (e.g. :1337)")
    if port_override:
        port_text = port_override
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigurationError(f"port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"port {port} is out of range 0-65535")
    host = host.strip("[]")
    return (host or None), port
