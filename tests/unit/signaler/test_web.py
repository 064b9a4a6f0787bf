"""The browser peer's files under /web/: names from a table, never from the file system."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import pytest

from weron.signaler.management import render_response
from weron.signaler.web import WebFiles, content_type, is_web_path


@pytest.fixture
def web(tmp_path: Path) -> WebFiles:
    root = tmp_path / "web"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>page</title>")
    (root / "app.js").write_text("export const x = 1;")
    (root / "js" / "crypto.js").write_text("export {};")
    (root / ".hidden").write_text("secret")
    (tmp_path / "outside.txt").write_text("not served")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    return WebFiles.load(root)


def test_index_and_files(web: WebFiles) -> None:
    index = web.handle("GET", "/web/", None)
    assert index.status is HTTPStatus.OK
    assert index.content_type == "text/html; charset=utf-8"
    assert index.body.startswith(b"<!doctype html>")
    assert web.handle("GET", "/web/index.html", None).body == index.body
    module = web.handle("GET", "/web/app.js?v=1", None)
    assert (module.status, module.content_type) == (
        HTTPStatus.OK,
        "text/javascript; charset=utf-8",
    )
    assert web.handle("GET", "/web/js/crypto.js", None).body == b"export {};"
    assert web.handle("GET", "/web/js%2Fcrypto.js", None).status is HTTPStatus.OK


def test_index_with_a_query_keeps_it(web: WebFiles) -> None:
    assert web.handle("GET", "/web/?community=c", None).status is HTTPStatus.OK
    redirect = web.handle("GET", "/web?community=c", None)
    assert redirect.status is HTTPStatus.MOVED_PERMANENTLY
    assert ("Location", "/web/?community=c") in redirect.headers


@pytest.mark.parametrize(
    "target",
    [
        "/web/../pyproject.toml",
        "/web/..%2F..%2Fetc%2Fpasswd",
        "/web/%2e%2e/outside.txt",
        "/web//etc/passwd",
        "/web/js/../../outside.txt",
        "/web/.hidden",
        "/web/missing.js",
        "/web/%ff",
        "/web/index.html%00",
        "/web/js",
        "/web/js/",
    ],
)
def test_nothing_outside_the_table(web: WebFiles, target: str) -> None:
    assert web.handle("GET", target, None).status is HTTPStatus.NOT_FOUND


def test_symlinks_inside_are_read_at_load_only(web: WebFiles) -> None:
    # A symlink in the package directory is read once like any file; requests never open one.
    assert web.names() == ["app.js", "index.html", "js/crypto.js", "link.txt"]


def test_methods(web: WebFiles) -> None:
    refused = web.handle("POST", "/web/", None)
    assert refused.status is HTTPStatus.METHOD_NOT_ALLOWED
    assert ("Allow", "GET, HEAD") in refused.headers
    head = web.handle("HEAD", "/web/", None)
    rendered = render_response(head, body=False)
    assert rendered.endswith(b"\r\n\r\n")
    assert f"Content-Length: {len(head.body)}".encode() in rendered


def test_caching_and_security_headers(web: WebFiles) -> None:
    first = web.handle("GET", "/web/app.js", None)
    headers = dict(first.headers)
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    etag = headers["ETag"]
    again = web.handle("GET", "/web/app.js", f'"other", W/{etag}')
    assert again.status is HTTPStatus.NOT_MODIFIED
    assert again.body == b""
    assert web.handle("GET", "/web/app.js", '"other"').status is HTTPStatus.OK
    assert dict(web.handle("GET", "/web/", None).headers)["ETag"] != etag


def test_missing_directory_serves_nothing(tmp_path: Path) -> None:
    web = WebFiles.load(tmp_path / "absent")
    assert web.names() == []
    assert web.handle("GET", "/web/", None).status is HTTPStatus.NOT_FOUND


def test_the_package_ships_the_page() -> None:
    assert "index.html" in WebFiles.load().names()


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/web/", True), ("/web", True), ("/web/a.js", True), ("/", False), ("/webx", False)],
)
def test_is_web_path(path: str, expected: bool) -> None:
    assert is_web_path(path) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.MJS", "text/javascript; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.svg", "image/svg+xml"),
        ("README", "application/octet-stream"),
        ("a.bin", "application/octet-stream"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type(name) == expected
