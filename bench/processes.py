"""Child processes under measurement, shared by the peer benchmarks: one selector over their
pipes, each line with its arrival time, their CPU time from /proc, and an orderly stop."""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

from common import log

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


class MeasurementError(Exception):
    """One scenario could not be measured (a process died, a timeout): reported, not fatal."""


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, stopping every process on the way."""


def raise_terminated_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, handler)


@dataclass(slots=True)
class Line:
    at: float  # time.monotonic() when the bench read the end of the line (NaN: read from a file)
    text: str
    data: dict[str, Any] | None  # the line as a JSON object, if it is one


def _parse(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # e.g. a line cut short by SIGINT
    return value if isinstance(value, dict) else None


def read_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far (/proc/PID/stat, in clock ticks)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        raise MeasurementError(f"cannot read the CPU time of pid {pid}: {exc}") from None
    fields = stat.rpartition(")")[2].split()  # after "pid (comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(eq=False, slots=True)
class Child:
    """A process under measurement and what it printed, each line with its arrival time."""

    name: str
    role: str  # "signaler", "server", "client"
    popen: subprocess.Popen[bytes]
    spawned_at: float
    stdout_path: Path | None  # stdout goes to this file rather than a pipe
    out: list[Line] = field(default_factory=list)
    err: list[Line] = field(default_factory=list)
    by_type: dict[str, list[Line]] = field(default_factory=dict)  # stdout JSON by "type"
    by_message: dict[str, list[Line]] = field(default_factory=dict)  # stderr logs by "message"
    partial: dict[int, bytes] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        return read_cpu_seconds(self.pid)

    def records(self, kind: str) -> list[Line]:
        return self.by_type.get(kind, [])

    def logs(self, message: str) -> list[Line]:
        return self.by_message.get(message, [])

    def add(self, stream: str, at: float, text: str) -> None:
        line = Line(at, text, _parse(text))
        if stream == "out":
            self.out.append(line)
            kind = line.data.get("type") if line.data is not None else None
            if isinstance(kind, str):
                self.by_type.setdefault(kind, []).append(line)
        else:
            self.err.append(line)
            message = line.data.get("message") if line.data is not None else None
            if isinstance(message, str):
                self.by_message.setdefault(message, []).append(line)

    def load_stdout_file(self) -> None:
        """Lines of a file-backed stdout (after the process ended)."""
        if self.stdout_path is None:
            return
        with contextlib.suppress(OSError):
            for text in self.stdout_path.read_text(errors="replace").splitlines():
                self.add("out", math.nan, text)

    def stderr_tail(self, lines: int = 15) -> str:
        return "\n".join(line.text for line in self.err[-lines:])

    def outcome(self) -> dict[str, Any]:
        levels = [line.data.get("level") for line in self.err if line.data is not None]
        errors = [
            line.text[:300]
            for line in self.err
            if (line.data is None and line.text.strip())
            or (line.data is not None and line.data.get("level") in ("error", "fatal"))
        ]
        return {
            "name": self.name,
            "exit_code": self.popen.returncode,
            "warnings": levels.count("warn"),
            "errors": errors[-10:],
        }


_PR_SET_PDEATHSIG: Final = 1
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)  # loaded before any fork
except OSError:
    _LIBC = None


def _prepare_child() -> None:
    """In the child, before exec: Linux SIGTERMs it if this benchmark dies without cleaning up,
    and SIGINT (how the peers are asked to print their totals) works even when this script was
    started with SIGINT ignored (e.g. in the background by a non-interactive shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Harness:
    """Every child process, one selector over their pipes, and the cleanup.

    Single-threaded on purpose: no thread exists when a child is forked (``preexec_fn`` is
    safe), and the bench costs the peers no CPU while it waits in ``select``. Children run in
    sessions of their own, so a Ctrl-C reaches only this script, which stops them in order.
    """

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._selector = selectors.DefaultSelector()
        self._streams: dict[int, tuple[Child, str, IO[bytes]]] = {}
        self.live: list[Child] = []
        self.outcomes: list[dict[str, Any]] = []
        self._counter = 0

    def spawn(
        self,
        name: str,
        role: str,
        argv: Sequence[str],
        *,
        stdout_to_file: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start ``argv``; ``env`` is added to this process's environment."""
        self._counter += 1
        stdout_path = self._log_dir / f"{self._counter:03d}-{role}.out" if stdout_to_file else None
        stdout_file = stdout_path.open("wb") if stdout_path is not None else None
        try:
            spawned_at = time.monotonic()
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=stdout_file if stdout_file is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
                preexec_fn=_prepare_child,  # noqa: PLW1509 (this process has no threads)
            )
        finally:
            if stdout_file is not None:
                stdout_file.close()
        child = Child(name, role, popen, spawned_at, stdout_path)
        self.live.append(child)
        for stream, pipe in (("out", popen.stdout), ("err", popen.stderr)):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                self._streams[pipe.fileno()] = (child, stream, pipe)
                self._selector.register(pipe.fileno(), selectors.EVENT_READ)
        return child

    def pump(self, timeout: float) -> None:
        """Read whatever the children printed, waiting at most ``timeout`` for something."""
        if not self._streams:
            time.sleep(max(timeout, 0.0))
            return
        for key, _ in self._selector.select(max(timeout, 0.0)):
            self._read(int(key.fd))

    def _read(self, fd: int) -> None:
        child, stream, pipe = self._streams[fd]
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        at = time.monotonic()
        if not chunk:
            self._selector.unregister(fd)
            del self._streams[fd]
            pipe.close()
            rest = child.partial.pop(fd, b"")
            if rest:
                child.add(stream, at, rest.decode(errors="replace"))
            return
        *complete, rest = (child.partial.pop(fd, b"") + chunk).split(b"\n")
        if rest:
            child.partial[fd] = rest
        for raw in complete:
            child.add(stream, at, raw.decode(errors="replace"))

    def check_alive(self, *children: Child) -> None:
        for child in children:
            if child.popen.poll() is not None:
                self._drain(child, 1.0)
                raise MeasurementError(
                    f"{child.name} exited with status {child.popen.returncode}:\n"
                    f"{child.stderr_tail()}"
                )

    def wait_for(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        watched: Sequence[Child],
    ) -> None:
        """Pump until ``condition()``; MeasurementError if a watched child exits or time runs
        out first."""
        deadline = time.monotonic() + timeout
        while not condition():
            self.check_alive(*watched)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tails = "\n".join(f"{c.name}:\n{c.stderr_tail()}" for c in watched)
                raise MeasurementError(f"no {what} within {timeout:g} s\n{tails}")
            self.pump(min(remaining, 0.05))

    def sleep(self, seconds: float, watched: Sequence[Child]) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.check_alive(*watched)
            self.pump(min(remaining, 0.05))

    def _drain(self, child: Child, seconds: float) -> None:
        """Read what an exited child left in its pipes (its descendants may hold them open:
        then give up after ``seconds``)."""
        deadline = time.monotonic() + seconds
        while any(owner is child for owner, _, _ in self._streams.values()):
            if time.monotonic() > deadline:
                for fd, (owner, _, pipe) in list(self._streams.items()):
                    if owner is child:
                        self._selector.unregister(fd)
                        del self._streams[fd]
                        pipe.close()
                break
            self.pump(0.05)

    def stop(self, child: Child, signum: int = signal.SIGINT, grace: float = 5.0) -> int:
        """Ask ``child`` to stop with ``signum``, SIGKILL it after ``grace`` s; its exit status."""
        if child.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.popen.send_signal(signum)
            deadline = time.monotonic() + grace
            while child.popen.poll() is None and time.monotonic() < deadline:
                self.pump(0.02)
            if child.popen.poll() is None:
                log(f"{child.name} ignored signal {signum} for {grace:g} s: killing it")
                child.popen.kill()
                child.popen.wait()
        self._drain(child, 2.0)
        child.load_stdout_file()
        if child in self.live:
            self.live.remove(child)
            self.outcomes.append(child.outcome())
        return child.popen.returncode

    def close(self) -> None:
        """Stop every child still running: clients first, the signaler last."""
        order = {"client": 0, "server": 1, "signaler": 2}
        for child in sorted(self.live, key=lambda c: order.get(c.role, 0)):
            try:
                self.stop(child, signal.SIGTERM, grace=5.0)
            except Exception as exc:  # keep stopping the others
                log(f"could not stop {child.name}: {exc}")
                with contextlib.suppress(OSError):
                    child.popen.kill()
        self._selector.close()


@contextlib.contextmanager
def harness(log_dir: Path) -> Iterator[Harness]:
    """A Harness whose children are all stopped on the way out, whatever happened; Ctrl-C and
    SIGTERM are held off while that cleanup runs."""
    h = Harness(log_dir)
    try:
        yield h
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            h.close()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)
