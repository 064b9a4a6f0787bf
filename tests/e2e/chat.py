"""`weron chat` and `gonet` processes driven through their stdin and read through their stdout."""

from __future__ import annotations

import codecs
import fcntl
import os
import queue
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.processes import skip_unless_available
from tests.terminal import Terminal


class LineProcess:
    """A chat-like process: lines in on stdin, lines out on stdout, logs to a file."""

    def __init__(self, command: list[str], log_dir: Path, prefix: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WERON_")}
        self.log_path = log_dir / f"{prefix}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._new.put(line.rstrip("\n"))

    def wait_for(self, wanted: str, timeout: float = 30.0) -> str:
        """The first output line (old or new) containing ``wanted``."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if wanted in line:
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{wanted!r} not printed within {timeout}s; output: {self.lines}; "
                    f"log tail: {self.logs()[-1500:]}"
                )
            try:
                self.lines.append(self._new.get(timeout=min(remaining, 0.2)))
            except queue.Empty:
                if self.process.poll() is not None and self._new.empty():
                    raise AssertionError(
                        f"chat exited with {self.process.returncode} before printing "
                        f"{wanted!r}; output: {self.lines}; log: {self.logs()[-1500:]}"
                    ) from None

    def wait_until(
        self, condition: Callable[[list[str]], bool], what: str, timeout: float = 30.0
    ) -> None:
        """Until ``condition`` holds for the output lines so far."""
        deadline = time.monotonic() + timeout
        while not condition(self.output()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"not {what} within {timeout}s; output: {self.lines}; "
                    f"log tail: {self.logs()[-1500:]}"
                )
            time.sleep(0.1)

    def output(self) -> list[str]:
        """Every line printed so far, without waiting."""
        while True:
            try:
                self.lines.append(self._new.get_nowait())
            except queue.Empty:
                return self.lines

    def name(self, timeout: float = 30.0) -> str:
        """The first name claimed."""
        return self.wait_for("!", timeout).rstrip("!").strip()

    def names(self) -> list[str]:
        """Every name claimed so far, in order (a name given up to an older member that
        claimed it at the same time is followed by another)."""
        return [line.rstrip("!").strip() for line in self.output() if line.endswith("!")]

    def say(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_stderr(self, text: str, timeout: float = 30.0) -> None:
        """Until stderr (the log file) has ``text``: notices, not log lines."""
        deadline = time.monotonic() + timeout
        while text not in self.logs():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"{text!r} not on stderr within {timeout}s; log tail: {self.logs()[-1500:]}"
                )
            time.sleep(0.1)

    def wait_for_log(self, message: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until the log has ``count`` lines whose message is ``message``."""
        wanted = f'"message":"{message}"'
        deadline = time.monotonic() + timeout
        while self.logs().count(wanted) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"{count} log lines {message!r} not seen within {timeout}s; "
                    f"log tail: {self.logs()[-1500:]}"
                )
            time.sleep(0.1)

    def stop(self) -> int:
        """End of input: the chat exits by itself."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.close()
                self.process.wait(15)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._log.close()


def chat_command(
    signaler_url: str,
    *args: str,
    backend: str | None = None,
    names: str = "user1,user2,user3",
    key: str = "mykey",
    verbose: str = "6",
    python: str = sys.executable,
) -> list[str]:
    """`weron chat` as the tests start it: short timeouts, no STUN server; on ``backend``
    (default: the engine weron picks), run by ``python``."""
    if backend is not None:
        skip_unless_available(backend)
    return [
        python,
        "-m",
        "weron",
        "chat",
        "--raddr",
        signaler_url,
        "--community",
        "chatroom",
        "--password",
        "pw",
        "--key",
        key,
        "--names",
        names,
        "--kicks",
        "1s",
        "--timeout",
        "2s",
        "--ice",
        "",
        *(("--backend", backend) if backend else ()),
        "--verbose",
        verbose,
        *args,
    ]


class ChatProcess(LineProcess):
    """`weron chat`."""

    def __init__(self, signaler_url: str, log_dir: Path, *args: str, **options: str) -> None:
        super().__init__(chat_command(signaler_url, *args, **options), log_dir, "chat")


class TerminalChat:
    """`weron chat` in a terminal (a pty, 1000 columns wide): keys in, what the terminal shows
    out, stdout and stderr alike."""

    def __init__(self, command: list[str]) -> None:
        main, secondary = os.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 1000, 0, 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WERON_")}
        self.process = subprocess.Popen(
            command, stdin=secondary, stdout=secondary, stderr=secondary, env=env
        )
        os.close(secondary)
        self._main = main
        self.terminal = Terminal(width=1000)
        self._lock = threading.Lock()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._main, 65536)
            except OSError:  # the chat exited: the terminal hung up
                return
            if not data:
                return
            with self._lock:
                self.terminal.feed(self._decoder.decode(data))

    def rows(self) -> list[str]:
        with self._lock:
            return list(self.terminal.rows)

    def cursor_row(self) -> str:
        with self._lock:
            return self.terminal.cursor_row

    def type(self, keys: str) -> None:
        os.write(self._main, keys.encode())

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} within {timeout}s; screen: {self.rows()}")
            time.sleep(0.05)

    def wait_for_row(self, text: str, timeout: float = 30.0) -> None:
        self.wait_until(lambda: any(text in row for row in self.rows()), f"{text!r}", timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        os.close(self._main)
        return code


GONET = [sys.executable, "-m", "weron.cli.gonet"]


class GonetProcess(LineProcess):
    """`gonet lobby/room/key`."""

    def __init__(
        self, signaler_url: str, log_dir: Path, room: str, *args: str, namespace: str = ""
    ) -> None:
        command = [*GONET, "--raddr", signaler_url, "--verbose", "6", *args, room]
        if namespace:
            command = ["ip", "netns", "exec", namespace, *command]
        super().__init__(command, log_dir, "gonet")
