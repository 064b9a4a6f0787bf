"""Structured, levelled logs like the original's zerolog output (`--verbose 0..7`).

Every line on stderr is one JSON object:
``{"level": "info", <fields>, "time": ..., "message": ...}``; or, for people reading a
terminal (``--log-format text``), one line of time, level, message and ``key=value`` fields.
Secrets never reach a log line: log URLs through :func:`redact_url`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import urllib.parse
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final, TextIO

TRACE: Final = 5
logging.addLevelName(TRACE, "TRACE")

# --verbose value -> stdlib level. 0 disables logging; 1 (panic) and 2 (fatal) both mean critical.
_VERBOSITY_LEVELS: Final = {
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.ERROR,
    4: logging.WARNING,
    5: logging.INFO,
    6: logging.DEBUG,
    7: TRACE,
}
_LEVEL_NAMES: Final = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_SECRET_QUERY_KEYS: Final = frozenset({"password", "key", "token", "api_key", "apikey", "secret"})
DEFAULT_VERBOSITY: Final = 5
WIRE_LOGGER: Final = "weron.wire"  # handed to protocol libraries (websockets)
LOG_FORMATS: Final = ("json", "text")
_NEEDS_QUOTES: Final = frozenset(' "=')  # a text value with these is quoted
# Libraries that log on loggers of their own (database and Redis drivers): we log what matters
# of their failures ourselves, so theirs only show at trace level, as JSON lines too.
_LIBRARY_LOGGERS: Final = ("psycopg", "redis")


class JSONFormatter(logging.Formatter):
    """Formats records as zerolog-style JSON lines; structured fields come from ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"level": _LEVEL_NAMES.get(record.levelno, "info")}
        line.update(self.fields(record))
        line["time"] = _timestamp(record)
        line["message"] = record.getMessage()
        return json.dumps(line, default=str, ensure_ascii=False, separators=(",", ":"))

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record's structured fields, and the traceback of an error (as ``error``)."""
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info and record.levelno >= logging.ERROR:
            fields["error"] = self.formatException(record.exc_info)
        return fields


class TextFormatter(JSONFormatter):
    """One line per record for a person at a terminal: ``time LEVEL message key=value...``.
    Values that are not plain words are written as JSON, so that a line stays one line and
    what a peer sent (names, reasons) cannot move the cursor or fake another line."""

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, "info").upper()
        message = record.getMessage()
        message = message if message.isprintable() else _text(message)
        parts = [_timestamp(record), f"{level:<5}", message]
        parts += [f"{key}={_text(value)}" for key, value in self.fields(record).items()]
        return " ".join(parts)


def _timestamp(record: logging.LogRecord) -> str:
    return (
        datetime.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")
    )


def _text(value: Any) -> str:
    if isinstance(value, str) and value and value.isprintable() and not _NEEDS_QUOTES & set(value):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


class Logger:
    """A thin wrapper so call sites read ``log.info("Joined", community=c)``."""

    __slots__ = ("_logger",)

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, message: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, message, extra={"fields": fields}, stacklevel=3)

    def enabled(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def at(self, level: int, message: str, **fields: Any) -> None:
        """At a level chosen elsewhere (a pure core's notices carry theirs)."""
        self._log(level, message, fields)

    def trace(self, message: str, **fields: Any) -> None:
        self._log(TRACE, message, fields)

    def debug(self, message: str, **fields: Any) -> None:
        self._log(logging.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._log(logging.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


@dataclass(slots=True)
class _Window:
    start: float
    written: int = 1
    held: int = 0


class LogQuota:
    """How many lines of one kind (a key: a peer and a message) are written: at most ``burst``
    each ``period`` seconds; those held back meanwhile are counted, and the count goes with
    the next line written. A member's messages must not decide how much we write (a refused
    request, a malformed frame: one line each otherwise). Pure: ``now`` comes in."""

    def __init__(self, burst: int = 10, period: float = 60.0, keys: int = 4096) -> None:
        self._burst = burst
        self._period = period
        self._keys = keys
        self._windows: dict[Hashable, _Window] = {}

    def take(self, key: Hashable, now: float) -> int | None:
        """None: hold this line back; else write it, saying how many were held back before."""
        window = self._windows.get(key)
        if window is None or now - window.start >= self._period:
            if window is None and len(self._windows) >= self._keys:
                self._forget(now)
            self._windows[key] = _Window(now)
            return window.held if window is not None else 0
        if window.written < self._burst:
            window.written += 1
            return 0
        window.held += 1
        return None

    def _forget(self, now: float) -> None:
        """Forget the keys whose window is over (their held-back count with them): keys come
        from peers, so there may be any number of them."""
        for key, window in list(self._windows.items()):
            if now - window.start >= self._period:
                del self._windows[key]


def configure(
    verbosity: int = DEFAULT_VERBOSITY, stream: TextIO | None = None, log_format: str = "json"
) -> None:
    """Route the ``weron`` loggers to ``stream`` (stderr) at the level ``--verbose`` asks for,
    as JSON lines or (``log_format="text"``) as text lines."""
    root = logging.getLogger("weron")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.propagate = False
    handler: logging.Handler
    if verbosity <= 0:
        handler = logging.NullHandler()
        root.setLevel(logging.CRITICAL + 10)
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        handler.setFormatter(TextFormatter() if log_format == "text" else JSONFormatter())
        root.setLevel(_VERBOSITY_LEVELS.get(min(verbosity, 7), TRACE))
    root.addHandler(handler)
    # Protocol-library chatter ("connection open") only at trace level, and never its debug
    # lines: they print request targets, which carry community passwords.
    logging.getLogger(WIRE_LOGGER).setLevel(logging.INFO if verbosity >= 7 else logging.WARNING)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = [handler]
        library.propagate = False
        library.setLevel(logging.INFO if verbosity >= 7 else logging.CRITICAL)


def redact_url(url: str) -> str:
    """Drop passwords from userinfo and secret query parameters, for logs and printed addresses."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = urllib.parse.urlencode(
            [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*"
        )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
