"""`weron signaler`: start a signaling server."""

from __future__ import annotations

import os

import click

from weron import log as weron_log
from weron.cli.options import CommaList, Duration, configure_logging, flag, verbose_flag
from weron.cli.runtime import run, wait_for_stop_signal
from weron.extras import MissingExtraError
from weron.signaler import (
    ConfigurationError,
    Signaler,
    SignalerConfig,
    StartError,
    parse_listen_address,
)

log = weron_log.get_logger("weron.signaler")


@click.command("signaler", short_help="Start a signaling server")
@flag(
    "--api-password",
    default="",
    extra_env=["API_PASSWORD"],
    help="Password for the management API (can also be set using the API_PASSWORD env "
    "variable). Ignored if any of the OIDC parameters are set.",
)
@flag(
    "--api-username",
    default="admin",
    extra_env=["API_USERNAME"],
    help="Username for the management API (can also be set using the API_USERNAME env "
    "variable). Ignored if any of the OIDC parameters are set.",
)
@flag(
    "--cleanup",
    type=bool,
    default=False,
    help="Remove what crashed servers left in the database before starting: their client "
    "counts, and the ephemeral communities only they kept alive (safe while other servers "
    "run: their counts are kept)",
)
@flag(
    "--ephemeral-communities",
    type=bool,
    default=True,
    help="Enable the creation of ephemeral communities",
)
@flag("--heartbeat", type=Duration(), default=10.0, help="Time to wait for heartbeats")
@flag(
    "--head-timeout",
    type=Duration(),
    default=10.0,
    help="Time a client gets to send its whole request (head, and body if any); slower "
    "connections get 408 and are closed",
)
@flag(
    "--idle-timeout",
    type=Duration(),
    default=5.0,
    help="Time a connection may stay silent before its request is complete; then it gets 408 "
    "and is closed",
)
@flag(
    "--max-source-connections",
    type=click.IntRange(min=0),
    default=256,
    help="Connections one source address (IPv6: one /64) may hold open at once, members "
    "included; more get 503. 0: no limit (behind a reverse proxy every client has its address)",
)
@flag(
    "--laddr",
    default=":1337",
    help="Listening address (can also be set using the PORT env variable, which replaces the "
    "port unless --laddr is given on the command line)",
)
@flag(
    "--oidc-client-id",
    default="",
    extra_env=["OIDC_CLIENT_ID"],
    help="OIDC Client ID (i.e. myoidcclientid) (can also be set using the OIDC_CLIENT_ID env "
    "variable)",
)
@flag(
    "--oidc-issuer",
    default="",
    extra_env=["OIDC_ISSUER"],
    help="OIDC Issuer (i.e. https://pojntfx.eu.auth0.com/) (can also be set using the "
    "OIDC_ISSUER env variable)",
)
@flag(
    "--postgres-url",
    default="",
    extra_env=["DATABASE_URL"],
    help="URL of PostgreSQL database to use (i.e. "
    "postgres://myuser:mypassword@myhost:myport/mydatabase) (can also be set using the "
    "DATABASE_URL env variable). If empty, a in-memory database will be used.",
)
@flag(
    "--redis-url",
    default="",
    extra_env=["REDIS_URL"],
    help="URL of Redis database to use (i.e. redis://myuser:mypassword@myhost:myport/1) (can "
    "also be set using the REDIS_URL env variable). If empty, a in-process broker will be "
    "used.",
)
@flag(
    "--redis-prefix",
    default="weron:",
    help="Prefix of the Redis pub/sub channels; servers sharing one Redis relay to each other "
    "only if their prefixes are equal (pub/sub ignores database numbers)",
)
@flag(
    "--state",
    default="",
    help="File keeping in-memory communities and their password verifiers (mode 0600) across "
    "restarts, so that members get their communities back. If empty, communities end with the "
    "process",
)
@flag(
    "--web",
    type=bool,
    default=True,
    help="Serve the browser peer, a page that joins communities, under /web/ (GET / stays the "
    "management API's list)",
)
@flag(
    "--allowed-origins",
    type=CommaList(),
    default=(),
    help="Web origins (scheme://host[:port], comma-separated; * for any) whose pages may join "
    "communities besides this signaler's own page; browsers from other origins get 403, "
    "clients that send no Origin (CLI peers) are not checked",
)
@flag(
    "--state-grace",
    type=Duration(),
    default=60.0,
    help="How long a restored ephemeral community waits for its members (with --state)",
)
@verbose_flag(leaf=True)
@click.pass_context
def signaler_command(
    ctx: click.Context,
    api_password: str,
    api_username: str,
    cleanup: bool,
    ephemeral_communities: bool,
    heartbeat: float,
    head_timeout: float,
    idle_timeout: float,
    max_source_connections: int,
    laddr: str,
    oidc_client_id: str,
    oidc_issuer: str,
    postgres_url: str,
    redis_url: str,
    redis_prefix: str,
    state: str,
    state_grace: float,
    web: bool,
    allowed_origins: list[str],
    verbose: int | None,
) -> None:
    """Start a signaling server.

    Peers join communities over WebSocket (ws://host:port/?community=C&password=P); the
    management API (list, create, delete communities) is on the same port behind HTTP Basic
    auth (or an OIDC ID token as the password), and disabled (501) unless an API password or
    OIDC is set. GET /healthz tells readiness, GET /metrics serves Prometheus metrics, GET /web/
    the browser peer. Several
    servers sharing PostgreSQL and Redis act as one. Stop it with Ctrl-C or SIGTERM.
    """
    configure_logging(ctx, verbose)
    for name, duration in (
        ("--heartbeat", heartbeat),
        ("--head-timeout", head_timeout),
        ("--idle-timeout", idle_timeout),
    ):
        if duration <= 0:
            raise click.BadParameter("must be positive", param_hint=name)
    config = SignalerConfig(
        heartbeat=heartbeat,
        cleanup=cleanup,
        ephemeral_communities=ephemeral_communities,
        api_username=api_username,
        api_password=api_password,
        oidc_issuer=oidc_issuer,
        oidc_client_id=oidc_client_id,
        postgres_url=postgres_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        idle_timeout=idle_timeout,
        head_timeout=head_timeout,
        max_source_connections=max_source_connections,
        state_file=state,
        state_grace=state_grace,
        web=web,
        allowed_origins=tuple(allowed_origins),
    )
    try:
        # A --laddr on the command line wins over PORT, as flags win over the environment.
        given = ctx.get_parameter_source("laddr") is click.core.ParameterSource.COMMANDLINE
        host, port = parse_listen_address(laddr, None if given else os.environ.get("PORT"))
        run(_serve(config, host, port))
    except (ConfigurationError, StartError, MissingExtraError) as exc:
        raise click.ClickException(str(exc)) from None


async def _serve(config: SignalerConfig, host: str | None, port: int) -> None:
    signaler = Signaler(config)
    try:
        await signaler.start(host, port)
    except OSError as exc:
        await signaler.close()
        raise click.ClickException(
            f"cannot listen on {host or ''}:{port}: {exc.strerror or exc}"
        ) from None
    log.info("Listening on address", laddr=f"{host or ''}:{signaler.port}")
    if config.web:
        log.info("Serving the browser peer", path="/web/")
    received = await wait_for_stop_signal()
    log.info("Shutting down", signal=received.name)
    await signaler.close()
