"""The control socket and the metrics endpoint of a peer process: thin asyncio adapters over
:mod:`weron.status.protocol` and :mod:`weron.status.metrics`.

The control socket is not a way in: it lives in a directory only we can enter, is mode 0600,
and also checks each client's uid (``SO_PEERCRED``: ours, or root's, as the file mode lets
root in anyway); a request is one bounded line read within a deadline, and anything malformed
gets an error reply and a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Final

from weron.log import get_logger
from weron.prometheus import CONTENT_TYPE
from weron.status import metrics, protocol
from weron.status.model import ProcessStatus

log = get_logger(__name__)

_READ_DEADLINE: Final = 5.0  # seconds for a client to send its request
_HTTP_HEAD: Final = 8192  # bytes of an HTTP request head, at most
_METRICS_CLIENTS: Final = 16  # scrapes served at once; more are closed at once (an open port)
_CREDENTIALS: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid

Snapshot = Callable[[], ProcessStatus]


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, option, _CREDENTIALS.size)
    return int(_CREDENTIALS.unpack(raw)[1])


class ControlServer:
    """Answers status requests on a Unix socket at ``path`` until closed (then removes it)."""

    def __init__(self, path: Path, snapshot: Snapshot) -> None:
        self.path = path
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by an earlier process with our pid
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=protocol.MAX_REQUEST
        )
        os.chmod(self.path, 0o600)  # the directory is 0700 already: nobody raced us in
        log.debug("Serving status", socket=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = _peer_uid(writer)
            if uid is not None and uid not in (os.getuid(), 0):
                log.warning("Refusing a status client of another user", uid=uid)
                return
            reply = await self._answer(reader)
            writer.write(reply)
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # the way out, quietly: asyncio before 3.12.x logs a cancelled handler
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> bytes:
        try:
            async with asyncio.timeout(_READ_DEADLINE):
                line = await reader.readuntil(b"\n")
            protocol.parse_request(line)
        except TimeoutError:
            return self._refuse("no request within the deadline")
        except asyncio.LimitOverrunError:
            return self._refuse(f"request longer than {protocol.MAX_REQUEST} bytes")
        except asyncio.IncompleteReadError:
            return self._refuse("request not ended by a newline")
        except protocol.RequestError as exc:
            return self._refuse(str(exc))
        return protocol.status_reply(self._snapshot())

    @staticmethod
    def _refuse(reason: str) -> bytes:
        log.warning("Malformed status request", reason=reason)
        return protocol.error_reply(reason)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class MetricsServer:
    """``GET /metrics`` over plain HTTP/1.0 (one request per connection), for Prometheus. At
    most :data:`_METRICS_CLIENTS` at once, each with a deadline: a port open to a network
    must not be a way to hold the process's file descriptors."""

    def __init__(self, host: str, port: int, snapshot: Snapshot) -> None:
        self._host, self._port = host, port
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None
        self._clients = 0

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one given for port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_HTTP_HEAD
        )
        log.info("Serving metrics", addr=f"{self._host}:{self.port}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= _METRICS_CLIENTS:
            writer.close()
            return
        self._clients += 1
        try:
            await self._answer(reader, writer)
        except asyncio.CancelledError:
            pass  # the way out, quietly: asyncio before 3.12.x logs a cancelled handler
        finally:
            self._clients -= 1

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_DEADLINE):
                head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].split()
            if request_line[:2] == [b"GET", b"/metrics"]:
                body = metrics.exposition(self._snapshot())
                writer.write(_response(b"200 OK", CONTENT_TYPE, body))
            else:
                writer.write(_response(b"404 Not Found", "text/plain", b"not found\n"))
            await writer.drain()
        except (TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            log.info("Malformed metrics request")
            with contextlib.suppress(Exception):
                writer.write(_response(b"400 Bad Request", "text/plain", b"bad request\n"))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


def _response(status: bytes, content_type: str, body: bytes) -> bytes:
    head = (
        b"HTTP/1.0 " + status + b"\r\nContent-Type: " + content_type.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    )
    return head + body
