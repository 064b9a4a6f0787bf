"""Where control sockets live and how they are named, so that `weron status` finds them all.

``$XDG_RUNTIME_DIR/weron/`` when set, else ``/run/weron`` for root and ``/tmp/weron-UID`` for
others; one socket per process, ``PID.COMMAND.COMMUNITY.sock`` (the community cut to fit a
socket path). The directory is ours alone (mode 0700, owned by us): one made by anybody else,
or open to others, is refused.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]+")
_COMMUNITY_CHARS: Final = 40
_NAME: Final = re.compile(
    r"^(?P<pid>[0-9]+)\.(?P<command>[A-Za-z0-9_-]+)\.(?P<community>.*)\.sock$"
)


class RuntimeDirError(OSError):
    """The runtime directory is missing, not ours, or open to others."""


def runtime_dir(environ: dict[str, str] | None = None, uid: int | None = None) -> Path:
    environ = dict(os.environ) if environ is None else environ
    uid = os.getuid() if uid is None else uid
    base = environ.get("XDG_RUNTIME_DIR", "")
    if base:
        return Path(base) / "weron"
    return Path("/run/weron") if uid == 0 else Path(f"/tmp/weron-{uid}")


def socket_name(pid: int, command: str, community: str) -> str:
    safe_command = _UNSAFE.sub("-", command).strip("-") or "peer"
    safe_community = _UNSAFE.sub("-", community)[:_COMMUNITY_CHARS]
    return f"{pid}.{safe_command}.{safe_community}.sock"


@dataclass(frozen=True, slots=True)
class SocketName:
    pid: int
    command: str
    community: str  # as cut and made safe for a file name


def parse_socket_name(name: str) -> SocketName | None:
    match = _NAME.match(name)
    if match is None:
        return None
    return SocketName(int(match["pid"]), match["command"], match["community"])


def check_private(directory: Path, *, reader: bool = False) -> None:
    """Refuse a directory that is not ours alone (``reader``: as `weron status`, root may
    read another user's, a service's for example)."""
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(f"{directory} is not a directory")
    uid = os.getuid()
    if info.st_uid != uid and not (reader and uid == 0):
        raise RuntimeDirError(f"{directory} belongs to uid {info.st_uid}, not us")
    if info.st_mode & 0o077:
        raise RuntimeDirError(f"{directory} is open to others (mode {info.st_mode & 0o777:o})")


def ensure_runtime_dir(directory: Path | None = None) -> Path:
    directory = runtime_dir() if directory is None else directory
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private(directory)
    return directory
