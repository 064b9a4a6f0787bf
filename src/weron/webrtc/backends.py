"""Choosing a WebRTC backend by name (``--backend``, ``WERON_BACKEND``).

libdatachannel is several times faster, but its wheels exist only for CPython 3.12+ on some
platforms (pyproject.toml installs it only there); aiortc runs everywhere. Without a name the
fastest engine that loads is used, and one info line says which and why.
"""

from __future__ import annotations

import importlib
from typing import Final

from weron.log import get_logger
from weron.webrtc import Backend

BACKEND_NAMES: Final = ("libdatachannel", "aiortc")
_WHEELS: Final = "CPython 3.12+ on Linux x86_64/aarch64 or macOS 15+ arm64"

log = get_logger(__name__)


class BackendUnavailableError(RuntimeError):
    pass


def libdatachannel_problem() -> str | None:
    """Why the libdatachannel backend cannot load here, or ``None`` when it can."""
    try:
        importlib.import_module("weron.webrtc.libdatachannel_backend")
    except ImportError as exc:
        if exc.name == "libdatachannel":
            return f"libdatachannel-py is not installed (its wheels need {_WHEELS})"
        return f"libdatachannel-py does not load: {exc}"
    return None


def default_backend_name() -> str:
    """libdatachannel where it loads, else aiortc."""
    return "libdatachannel" if libdatachannel_problem() is None else "aiortc"


def load_backend(name: str | None = None) -> Backend:
    """The backend ``name``, else the default; logs the engine in use and why."""
    if name is None:
        problem = libdatachannel_problem()
        name = "aiortc" if problem else "libdatachannel"
        reason = problem or "the default where it is installed (the fastest)"
    else:
        name, reason = name.strip().lower(), "asked for by name (--backend)"
    if name == "aiortc":
        from weron.webrtc.aiortc_backend import AiortcBackend

        log.info("WebRTC engine", engine=name, reason=reason)
        return AiortcBackend()
    if name == "libdatachannel":
        problem = libdatachannel_problem()
        if problem:
            raise BackendUnavailableError(
                f"the libdatachannel backend is not available here: {problem}; "
                "use --backend aiortc (or leave --backend out)"
            )
        from weron.webrtc.libdatachannel_backend import LibdatachannelBackend

        log.info("WebRTC engine", engine=name, reason=reason)
        return LibdatachannelBackend()
    raise BackendUnavailableError(
        f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}"
    )
