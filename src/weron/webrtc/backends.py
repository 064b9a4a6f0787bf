"""Choosing a WebRTC backend by name (``--backend``, ``WERON_BACKEND``)."""

from __future__ import annotations

import importlib.util
from typing import Final

from weron.webrtc import Backend

BACKEND_NAMES: Final = ("libdatachannel", "aiortc")


class BackendUnavailableError(RuntimeError):
    pass


def _libdatachannel_available() -> bool:
    return (
        importlib.util.find_spec("libdatachannel") is not None
        and importlib.util.find_spec("weron.webrtc.libdatachannel_backend") is not None
    )


def default_backend_name() -> str:
    """libdatachannel (several times faster) where it is installed, else aiortc."""
    return "libdatachannel" if _libdatachannel_available() else "aiortc"


def load_backend(name: str | None = None) -> Backend:
    name = (name or default_backend_name()).strip().lower()
    if name == "aiortc":
        from weron.webrtc.aiortc_backend import AiortcBackend

        return AiortcBackend()
    if name == "libdatachannel":
        if not _libdatachannel_available():
            raise BackendUnavailableError(
                "the libdatachannel backend is not available here (it needs the "
                "libdatachannel-py wheel: CPython 3.12+ on Linux x86_64/arm64 or macOS arm64); "
                "use --backend aiortc"
            )
        from weron.webrtc.libdatachannel_backend import LibdatachannelBackend

        return LibdatachannelBackend()
    raise BackendUnavailableError(
        f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}"
    )
