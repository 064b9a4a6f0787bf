"""Asking running peer processes for their status over their control sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from weron.log import get_logger
from weron.status import paths, protocol
from weron.status.model import ProcessStatus, StatusFormatError

log = get_logger(__name__)

_DEADLINE: Final = 10.0  # seconds for a process to answer (a loaded machine is slow)


class StatusQueryError(ConnectionError):
    """A process that did not answer, or answered nonsense."""


@dataclass(frozen=True, slots=True)
class Found:
    path: Path
    pid: int | None  # from the socket's name, if it follows the scheme


def find_sockets(directory: Path) -> list[Found]:
    """Every control socket in ``directory``, by pid (none if it does not exist). A
    directory another user could have filled is refused (:class:`paths.RuntimeDirError`):
    its sockets could be anybody's."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        paths.check_private(directory, reader=True)
        for entry in directory.iterdir():
            name = paths.parse_socket_name(entry.name)
            if name is not None:
                found.append(Found(entry, name.pid))
    return sorted(found, key=lambda item: (item.pid or 0, item.path.name))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie does not: a process killed with SIGKILL stays one
    until its parent reaps it, and a parent that never does (a container's shell as pid 1)
    would keep its socket listed as not answering for ever."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # not Linux, or gone meanwhile
        return False
    # "PID (COMMAND) STATE ...": the command may hold spaces and parentheses.
    return stat[stat.rfind(")") + 1 :].split()[:1] == ["Z"]


async def query(path: Path) -> ProcessStatus:
    """One process's status; :class:`StatusQueryError` if it cannot be had."""
    try:
        async with asyncio.timeout(_DEADLINE):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=protocol.MAX_REPLY)
            try:
                writer.write(protocol.request_line())
                await writer.drain()
                line = await reader.readuntil(b"\n")
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        return protocol.parse_reply(line)
    except TimeoutError:
        raise StatusQueryError(f"{path}: no answer within {_DEADLINE:.0f} s") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise StatusQueryError(f"{path}: {exc}") from None
    except StatusFormatError as exc:
        raise StatusQueryError(f"{path}: {exc}") from None


async def query_all(found: list[Found]) -> list[ProcessStatus]:
    """Every process that answers. A socket whose process is gone is removed (it was left
    by a crash or a kill -9); one that fails otherwise is skipped with a warning."""
    results = await asyncio.gather(*(query(item.path) for item in found), return_exceptions=True)
    statuses = []
    for item, result in zip(found, results, strict=True):
        if isinstance(result, ProcessStatus):
            statuses.append(result)
        elif item.pid is not None and not _alive(item.pid):
            log.debug("Removing a stale control socket", socket=str(item.path))
            with contextlib.suppress(OSError):
                item.path.unlink()
        else:
            log.warning("Process did not answer", error=str(result))
    return statuses
