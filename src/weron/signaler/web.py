"""The browser peer's files under ``/web/`` (docs/browser.md#serving): request in, response out.

The files (``weron/web/`` in the package) are read once, when the signaler starts, into a table
of names: a request can only ever name an entry of that table, so no path it carries (``..``,
encoded slashes, symlinks) reaches the file system.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from weron.log import get_logger
from weron.signaler.management import HTTPResponse

log = get_logger(__name__)

PREFIX: Final = "/web/"
INDEX: Final = "index.html"
MAX_FILES: Final = 256  # the page is a handful of modules; more is a packaging mistake
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}
# Revalidate every time (an upgraded signaler serves new modules at the same names), and keep
# the page to its own modules: no inline script, no framing, no referrer leaving with the query.
_HEADERS: Final = (
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'",
    ),
)


def is_web_path(path: str) -> bool:
    """Whether a request path (without query) belongs to the page rather than to the API."""
    return path == PREFIX.rstrip("/") or path.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class WebFile:
    body: bytes
    content_type: str
    etag: str


def content_type(name: str) -> str:
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return _TYPES.get(suffix, "application/octet-stream")


def _walk(directory: Traversable, prefix: str, files: dict[str, WebFile]) -> None:
    for entry in sorted(directory.iterdir(), key=lambda item: item.name):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        name = prefix + entry.name
        if entry.is_dir():
            _walk(entry, name + "/", files)
        elif entry.is_file():
            if len(files) >= MAX_FILES:
                raise ValueError(f"more than {MAX_FILES} files under the web directory")
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[name] = WebFile(body, content_type(name), etag)


class WebFiles:
    """The page's files by name (``index.html``, ``js/app.js``), answering GET and HEAD."""

    def __init__(self, files: dict[str, WebFile]) -> None:
        self._files = files

    @classmethod
    def load(cls, root: Traversable | None = None) -> WebFiles:
        """Read every file under ``root`` (default: the package's ``web`` directory)."""
        directory = root if root is not None else resources.files("weron").joinpath("web")
        files: dict[str, WebFile] = {}
        if directory.is_dir():
            _walk(directory, "", files)
        if INDEX not in files:
            log.warning("The browser page is missing from this installation", file=INDEX)
        return cls(files)

    def names(self) -> list[str]:
        return sorted(self._files)

    def handle(self, method: str, target: str, if_none_match: str | None) -> HTTPResponse:
        """The response to a request whose path :func:`is_web_path` accepted."""
        if method not in ("GET", "HEAD"):
            return HTTPResponse.text(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method {method[:16]} not allowed",
                ("Allow", "GET, HEAD"),
            )
        path, _, query = target.partition("?")
        if path == PREFIX.rstrip("/"):
            # Relative module imports resolve against the directory: the slash matters.
            location = PREFIX + ("?" + query if query else "")
            return HTTPResponse.text(
                HTTPStatus.MOVED_PERMANENTLY, "see " + PREFIX, ("Location", location)
            )
        try:
            name = urllib.parse.unquote(path[len(PREFIX) :], errors="strict")
        except UnicodeDecodeError:
            name = "\x00"  # never a name in the table
        found = self._files.get(name or INDEX)
        if found is None:
            return HTTPResponse.text(HTTPStatus.NOT_FOUND, "no such file")
        headers = (*_HEADERS, ("ETag", found.etag))
        if if_none_match is not None and found.etag in (
            tag.strip().removeprefix("W/") for tag in if_none_match.split(",")
        ):
            return HTTPResponse(HTTPStatus.NOT_MODIFIED, b"", found.content_type, headers)
        return HTTPResponse(HTTPStatus.OK, found.body, found.content_type, headers)
