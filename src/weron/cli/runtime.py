"""Running a command's coroutine: event loop choice, Ctrl-C and SIGTERM, user-facing errors."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from weron.apps.peering import PeerAppError
from weron.peers.names import AllNamesClaimedError
from weron.signaler_client.client import SignalingError
from weron.status.observe import MetricsAddressError, Observation, observed
from weron.webrtc import Backend
from weron.webrtc.backends import BackendUnavailableError, load_backend
from weron.webrtc.ice import IceConfigError

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when installed; Ctrl-C ends quietly with status 130."""
    # The event loop handles Ctrl-C from here on (the entry point's quiet exit was for the
    # start-up): asyncio takes SIGINT over only from Python's default handler.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main)
        return uvloop.run(main)
    except KeyboardInterrupt:
        main.close()  # Ctrl-C before the loop ran it: no "never awaited" warning
        sys.exit(130)


def _terminating_signals() -> tuple[signal.Signals, ...]:
    """SIGTERM, and SIGHUP (the terminal closed) unless it is ignored (``nohup``): without a
    handler it killed the process at once, so peers saw it leave only after their timeout."""
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return (signal.SIGTERM,)
    return signal.SIGTERM, signal.SIGHUP


async def wait_for_stop_signal() -> signal.Signals:
    """Return once SIGINT, SIGTERM or SIGHUP arrives (then let the caller shut down
    gracefully)."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def receive(signum: signal.Signals) -> None:
        if not received.done():
            received.set_result(signum)

    signals = (signal.SIGINT, *_terminating_signals())
    for signum in signals:
        loop.add_signal_handler(signum, receive, signum)
    try:
        return await received
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _until_terminated(main: Coroutine[Any, Any, object]) -> None:
    """SIGTERM (or SIGHUP) ends a peer app like Ctrl-C does: cleanly, totals printed,
    connections closed, leaving announced."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    signals = _terminating_signals()
    for signum in signals:
        loop.add_signal_handler(signum, terminate)
    try:
        await main
    except asyncio.CancelledError:
        if not terminated:
            raise
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def run_app(main: Coroutine[Any, Any, object]) -> None:
    """Run an application until it ends, Ctrl-C (status 130) or SIGTERM/SIGHUP (clean end)."""
    run(_until_terminated(main))


def run_peer_app(
    app: Callable[[Backend], Coroutine[Any, Any, object]],
    backend_name: str | None,
    observation: Observation,
) -> None:
    """Run a peer application with the chosen backend, seen by `weron status` (and metrics)
    through ``observation``; expected failures (bad flags, wrong password, no name left)
    become one clear line and a non-zero exit, not a traceback."""
    try:
        run_app(observed(observation, app(load_backend(backend_name))))
    except (
        MetricsAddressError,
        BackendUnavailableError,
        IceConfigError,
        SignalingError,
        AllNamesClaimedError,
        PeerAppError,
    ) as exc:
        raise click.ClickException(str(exc)) from None
