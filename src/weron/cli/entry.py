"""The console scripts' entry points. Loading and parsing a command takes a moment; Ctrl-C
during it ends quietly with status 130, as it does once the command runs (not with a
traceback from an import, nor click's "Aborted!" and status 1)."""

from __future__ import annotations

# The C module: the signal module imports enum first, and Ctrl-C must be caught from the
# earliest moment.
import _signal  # type: ignore[import-not-found]  # no stubs: it is signal without enum
import os
import sys
from types import FrameType

TYPE_CHECKING = False  # not typing's: importing it would delay catching Ctrl-C
if TYPE_CHECKING:
    from collections.abc import Callable


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # Not sys.exit: SystemExit raised where Python cannot raise (a weakref callback of the
    # import machinery, a __del__) is printed as "Exception ignored" and the command went on.
    # Nothing is open yet that needs closing.
    sys.stdout.flush()
    os._exit(130)


def _quiet_until_running() -> None:
    """Until :func:`weron.cli.runtime.run` hands Ctrl-C to the event loop (unless Ctrl-C
    is ignored, as in a shell's background job)."""
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, _interrupted)


def _exiting(main: Callable[[], None]) -> None:
    """Run ``main`` and record the status it exits with (see ``weron.exit_status``): a
    connection still closing at exit then delays the end by a bounded grace, not until the
    engine gives up on a peer it cannot reach."""
    try:
        main()
    except SystemExit as exc:
        from weron import exit_status

        exit_status.record(exc.code)
        raise


def weron() -> None:
    _quiet_until_running()
    from weron.cli.main import main

    _exiting(main)


def gonet() -> None:
    _quiet_until_running()
    from weron.cli.gonet import main

    _exiting(main)
