"""Optional libraries (pip extras): a user who only chats installs neither the signaler's
database, Redis and OIDC libraries (``server``) nor libtorrent (``dht``). Features that need
them import them lazily, inside :func:`needs_extra`, so a missing one is a clear message naming
the extra to install instead of an import traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class MissingExtraError(RuntimeError):
    """A feature was asked for whose optional library is not installed; the message says which
    extra brings it."""


@contextlib.contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Turn an :class:`ImportError` of a third-party library inside the block into a
    :class:`MissingExtraError`; one of weron's own modules failing to import is a bug, not a
    missing extra, and is left as it is."""
    try:
        yield
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "weron":
            raise
        library = f" ({exc.name} is missing)" if exc.name else ""
        raise MissingExtraError(
            f"{feature} needs the optional libraries of weron[{extra}]{library}: "
            f"pip install 'weron[{extra}]'"
        ) from None
