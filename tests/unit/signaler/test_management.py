"""The management API as a function of (method, target, Authorization) to a response."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus

import h11
import pytest

from weron.signaler.auth import BasicAuth
from weron.signaler.broker import RelayedMessage
from weron.signaler.broker.local import LocalBroker
from weron.signaler.management import HTTPResponse, ManagementAPI, render_response
from weron.signaler.passwords import PasswordCheckBusyError
from weron.signaler.store import Community, StoreUnavailableError
from weron.signaler.store.memory import MemoryStore

ADMIN = "Basic " + base64.b64encode(b"admin:api-secret").decode("ascii")


@dataclass
class RecordingSink:
    delivered: list[tuple[str, RelayedMessage]] = field(default_factory=list)
    kicked: list[str] = field(default_factory=list)

    def fan_out(self, community: str, message: RelayedMessage) -> None:
        self.delivered.append((community, message))

    def kick(self, community: str) -> None:
        self.kicked.append(community)

    def kicks_missed(self) -> None:
        raise AssertionError("a local broker is never cut off")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def api(store: MemoryStore, sink: RecordingSink) -> AsyncIterator[ManagementAPI]:
    broker = LocalBroker()
    await broker.open(sink)
    yield ManagementAPI(store, broker, BasicAuth("admin", "api-secret"))
    await broker.close()


def body_json(response: HTTPResponse) -> object:
    assert response.status is HTTPStatus.OK
    assert response.content_type == "application/json"
    return json.loads(response.body)


def header(response: HTTPResponse, name: str) -> str | None:
    return next((value for key, value in response.headers if key.lower() == name.lower()), None)


async def test_disabled_without_auth(store: MemoryStore) -> None:
    api = ManagementAPI(store, LocalBroker(), None)
    for method in ("GET", "POST", "DELETE"):
        response = await api.handle(method, "/?community=c&password=p", ADMIN)
        assert response.status is HTTPStatus.NOT_IMPLEMENTED
        assert b"disabled" in response.body
    assert await store.list() == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic " + base64.b64encode(b"admin:wrong").decode(),
        "Basic " + base64.b64encode(b"root:api-secret").decode(),
        "Bearer api-secret",
        "Basic !!!",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unauthorized(
    api: ManagementAPI, store: MemoryStore, method: str, authorization: str | None
) -> None:
    await store.create("c", "pw")
    response = await api.handle(method, "/?community=c&password=p", authorization)
    assert response.status is HTTPStatus.UNAUTHORIZED
    challenge = header(response, "WWW-Authenticate")
    assert challenge is not None
    assert challenge.startswith("Basic ")
    assert [c.id for c in await store.list()] == ["c"]  # nothing changed


@pytest.mark.parametrize("method", ["PUT", "PATCH", "HEAD", "OPTIONS", "get"])
async def test_method_not_allowed(api: ManagementAPI, method: str) -> None:
    response = await api.handle(method, "/", ADMIN)
    assert response.status is HTTPStatus.METHOD_NOT_ALLOWED
    assert header(response, "Allow") == "GET, POST, DELETE"


async def test_list(api: ManagementAPI, store: MemoryStore) -> None:
    assert body_json(await api.handle("GET", "/", ADMIN)) == []
    await store.create("p", "pw")
    await store.join("e", "pw", ephemeral=True)
    listed = body_json(await api.handle("GET", "/?community=ignored", ADMIN))
    assert listed == [
        {"id": "p", "clients": 0, "persistent": True},
        {"id": "e", "clients": 1, "persistent": False},
    ]


async def test_create(api: ManagementAPI, store: MemoryStore) -> None:
    response = await api.handle("POST", "/?community=my%20c&password=p%26w", ADMIN)
    assert body_json(response) == {"id": "my c", "clients": 0, "persistent": True}
    await store.join("my c", "p&w", ephemeral=False)  # the password is the decoded one
    assert body_json(await api.handle("GET", "/", ADMIN)) == [
        {"id": "my c", "clients": 1, "persistent": True}
    ]


async def test_create_existing(api: ManagementAPI, store: MemoryStore) -> None:
    await store.join("c", "pw", ephemeral=True)
    response = await api.handle("POST", "/?community=c&password=other", ADMIN)
    assert response.status is HTTPStatus.CONFLICT
    assert b"already exists" in response.body


@pytest.mark.parametrize(
    ("method", "target", "reason"),
    [
        ("POST", "/?password=p", b"missing community"),
        ("POST", "/?community=%20&password=p", b"missing community"),
        ("DELETE", "/", b"missing community"),
        ("POST", "/?community=c", b"missing password"),
        ("POST", "/?community=c&password=++", b"missing password"),
        ("POST", "/?community=c&password=" + "x" * 73, b"longer than 72 bytes"),
        ("POST", "/?community=%ff&password=p", b"malformed query string"),
        ("GET", "/?community=%ff", b"malformed query string"),
    ],
)
async def test_bad_request(
    api: ManagementAPI, store: MemoryStore, method: str, target: str, reason: bytes
) -> None:
    response = await api.handle(method, target, ADMIN)
    assert response.status is HTTPStatus.BAD_REQUEST
    assert reason in response.body
    assert await store.list() == []


async def test_delete(api: ManagementAPI, store: MemoryStore, sink: RecordingSink) -> None:
    await store.create("p", "pw")
    await store.join("e", "pw", ephemeral=True)
    response = await api.handle("DELETE", "/?community=p", ADMIN)
    assert response.status is HTTPStatus.OK
    assert sink.kicked == ["p"]
    await api.handle("DELETE", "/?community=e", ADMIN)
    assert sink.kicked == ["p", "e"]
    assert await store.list() == []
    assert sink.delivered == []


async def test_delete_unknown(api: ManagementAPI, sink: RecordingSink) -> None:
    response = await api.handle("DELETE", "/?community=nope", ADMIN)
    assert response.status is HTTPStatus.NOT_FOUND
    assert sink.kicked == []


def parse_as_client(raw: bytes) -> tuple[h11.Response, bytes, bool]:
    """(response, body, whether the message ended) as an HTTP/1.1 client reads ``raw``."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "signaler")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    response, body, ended = None, b"", False
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            ended = True
            break
        else:
            break
    assert response is not None
    return response, body, ended


@pytest.mark.parametrize(
    "response",
    [
        HTTPResponse.json([{"id": "é", "clients": 1, "persistent": False}]),
        HTTPResponse.text(HTTPStatus.UNAUTHORIZED, "no", ("WWW-Authenticate", 'Basic realm="x"')),
        HTTPResponse(HTTPStatus.OK),
    ],
)
def test_render_response_is_valid_http(response: HTTPResponse) -> None:
    raw = render_response(response)
    assert raw.startswith(f"HTTP/1.1 {response.status.value} ".encode())
    parsed, body, ended = parse_as_client(raw)
    assert ended
    assert parsed.status_code == response.status.value
    assert parsed.http_version == b"1.1"
    assert body == response.body
    headers = dict(parsed.headers)
    assert headers[b"content-length"] == str(len(response.body)).encode()
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == response.content_type.encode()
    for name, value in response.headers:
        assert headers[name.lower().encode()] == value.encode()


def test_text_response_ends_with_newline() -> None:
    response = HTTPResponse.text(HTTPStatus.NOT_FOUND, "gone")
    assert response.body == b"gone\n"
    assert response.content_type == "text/plain; charset=utf-8"


class FailingStore(MemoryStore):
    """Fails every create and list as a busy bcrypt queue or an unreachable database would."""

    def __init__(self, failure: Exception) -> None:
        super().__init__()
        self.failure = failure

    async def create(self, community: str, password: str, source: str = "") -> Community:
        raise self.failure

    async def list(self) -> list[Community]:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (PasswordCheckBusyError(), b"too many password checks"),
        (StoreUnavailableError("cannot use PostgreSQL: gone"), b"store unavailable: cannot use"),
    ],
)
async def test_create_busy_or_unavailable_is_503(failure: Exception, reason: bytes) -> None:
    api = ManagementAPI(FailingStore(failure), LocalBroker(), BasicAuth("admin", "api-secret"))
    response = await api.handle("POST", "/?community=c&password=pw", ADMIN)
    assert response.status is HTTPStatus.SERVICE_UNAVAILABLE
    assert reason in response.body


async def test_list_while_store_unavailable_is_503() -> None:
    failure = StoreUnavailableError("cannot use PostgreSQL: gone")
    api = ManagementAPI(FailingStore(failure), LocalBroker(), BasicAuth("admin", "api-secret"))
    response = await api.handle("GET", "/", ADMIN)
    assert response.status is HTTPStatus.SERVICE_UNAVAILABLE


@pytest.mark.parametrize("name", ["a%1Bb", "nul%00", "cr%0D%0Alf", "del%7F", "c1%C2%9B"])
async def test_create_with_control_character_is_400(api: ManagementAPI, name: str) -> None:
    response = await api.handle("POST", f"/?community={name}&password=pw", ADMIN)
    assert response.status is HTTPStatus.BAD_REQUEST
    assert b"control character" in response.body
