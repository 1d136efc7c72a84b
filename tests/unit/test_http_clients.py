"""The LMS source clients without the sample server: URL rules, parsing, auth, and paging quirks.

Paging quirks the sample LMS cannot produce (absolute or endpoint-relative `more` links, trailing
empty pages, missing headers, a SCIM server that ignores startIndex) and the OAuth2 token
endpoint are played by a tiny scripted HTTP stub on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from turnover_signals.errors import SourceRefusedError, SourceUnavailableError, TurnoverSignalsError
from turnover_signals.sources.http_base import (
    BasicAuth,
    BearerToken,
    OAuth2ClientCredentials,
    PaginationLoopError,
    RetryPolicy,
    display_url,
    error_detail,
    looks_rate_limited,
    parse_retry_after,
    resolve_base_url,
    scrub,
    settings_from_connection,
)
from turnover_signals.sources.scim import ScimClient, last_modified_filter
from turnover_signals.sources.xapi import (
    RefusedStatement,
    StatementBounds,
    TimezoneMissingError,
    XapiClient,
    XapiTimestampError,
    decode_statement_page,
    format_xapi_timestamp,
    parse_xapi_timestamp,
    statement_stored_at,
)

FAST_RETRY = RetryPolicy(
    attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.002, max_retry_after_seconds=1.0
)
SECRET = "s3cr3t-p4ss"


# -- a scripted HTTP stub --------------------------------------------------------------------------


@dataclass
class StubRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}


Reply = tuple[int, dict[str, str], bytes]


def reply(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode()


@dataclass
class StubServer:
    app: Callable[[StubRequest], Reply]
    requests: list[StubRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = StubRequest(self.command, self.path, dict(self.headers.items()), body)
                stub.requests.append(request)
                status, headers, payload = stub.app(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def stub() -> Iterator[Callable[[Callable[[StubRequest], Reply]], StubServer]]:
    servers: list[StubServer] = []

    def start(app: Callable[[StubRequest], Reply]) -> StubServer:
        servers.append(StubServer(app))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def xapi_client(server: StubServer, **kwargs: Any) -> XapiClient:
    kwargs.setdefault("auth", BasicAuth("lrs", SECRET))
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("sleep", lambda seconds: None)
    return XapiClient(base_url=server.base_url + "/xapi", timeout=(2, 5), **kwargs)


def statement(number: int) -> dict[str, Any]:
    return {"id": f"00000000-0000-0000-0000-{number:012d}", "stored": f"2024-03-01T08:00:{number:02d}Z"}


def make_response(
    status: int, body: bytes | str = b"", headers: dict[str, str] | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode() if isinstance(body, str) else body
    response.headers.update(headers or {})
    return response


# -- connection settings and URLs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema", "port", "base_path", "expected"),
    [
        ("lrs.example.com", "https", 8443, "/xapi", "https://lrs.example.com:8443/xapi"),
        ("127.0.0.1", "http", 8080, "xapi/", "http://127.0.0.1:8080/xapi"),
        ("lrs.example.com", "", None, None, "https://lrs.example.com"),
        ("lrs.example.com", "HTTP", "81", "/a/b/", "http://lrs.example.com:81/a/b"),
        ("https://lms.example.com/tenant/", "http", 9999, "/xapi", "https://lms.example.com/tenant/xapi"),
        ("http://10.0.0.5:8000", None, None, "", "http://10.0.0.5:8000"),
        ("::1", "http", 8080, "", "http://[::1]:8080"),
    ],
)
def test_base_url_follows_the_connection_contract(host, schema, port, base_path, expected):
    assert resolve_base_url(host, schema, port, base_path) == expected


@pytest.mark.parametrize(("host", "schema"), [("", "https"), (None, "http"), ("lrs.example.com", "ftp")])
def test_base_url_rejects_unusable_connections(host, schema):
    with pytest.raises(ValueError):
        resolve_base_url(host, schema, None, None)


def connection(**fields: Any) -> SimpleNamespace:
    defaults = {"host": "lrs.example.com", "schema": "https", "port": None, "login": None, "password": None}
    extra = fields.pop("extra", {})
    return SimpleNamespace(**{**defaults, **fields}, extra_dejson=extra)


def test_settings_pick_basic_oauth2_or_bearer_auth():
    basic = settings_from_connection(
        connection(login="lrs", password=SECRET, extra={"base_path": "/xapi"}), "lms_api", "basic_or_oauth2"
    )
    assert basic.base_url == "https://lrs.example.com/xapi" and isinstance(basic.auth, BasicAuth)
    assert basic.verify is True and basic.source_name == "Airflow connection 'lms_api'"

    oauth = settings_from_connection(
        connection(
            login="ignored",
            extra={"token_url": "/oauth/token", "client_id": "cid", "client_secret": SECRET, "scope": "read"},
        ),
        "lms_api",
        "basic_or_oauth2",
    )
    assert isinstance(oauth.auth, OAuth2ClientCredentials)
    assert oauth.auth.token_url == "https://lrs.example.com/oauth/token" and oauth.auth.scope == "read"

    from_password = settings_from_connection(connection(password="tok-1234"), "lms_directory", "bearer")
    from_extra = settings_from_connection(connection(extra={"token": "tok-5678"}), "lms_directory", "bearer")
    assert from_password.auth.token == "tok-1234" and from_extra.auth.token == "tok-5678"
    for settings in (basic, oauth, from_password):
        assert SECRET not in repr(settings) and "tok-1234" not in repr(settings)


@pytest.mark.parametrize(
    ("fields", "kind", "problem"),
    [
        ({"host": ""}, "basic_or_oauth2", "no host"),
        ({}, "basic_or_oauth2", "no credentials"),
        (
            {"extra": {"token_url": "https://idp/token", "client_id": "cid"}},
            "basic_or_oauth2",
            "client_secret",
        ),
        ({"login": "x"}, "bearer", "no bearer token"),
        ({"login": "x", "password": "y", "extra": {"verify_tls": "maybe"}}, "basic_or_oauth2", "verify_tls"),
    ],
)
def test_unusable_connections_are_refused_with_a_next_step(fields, kind, problem):
    with pytest.raises(SourceRefusedError) as raised:
        settings_from_connection(connection(**fields), "lms_api", kind)
    assert problem in str(raised.value) and "Next step:" in str(raised.value)
    assert "lms_api" in str(raised.value)


def test_tls_verification_can_use_a_ca_bundle_or_be_disabled_loudly(caplog):
    with_bundle = settings_from_connection(
        connection(login="l", password="p", extra={"ca_bundle": "/etc/ssl/lms-ca.pem"}),
        "lms_api",
        "basic_or_oauth2",
    )
    assert with_bundle.verify == "/etc/ssl/lms-ca.pem"
    with caplog.at_level(logging.WARNING):
        disabled = settings_from_connection(
            connection(password="tok-1234", extra={"verify_tls": "false"}), "lms_directory", "bearer"
        )
    assert disabled.verify is False
    assert any(r.levelno == logging.WARNING and "lms_directory" in r.getMessage() for r in caplog.records)


def test_clients_read_no_connection_until_the_first_request():
    client = XapiClient()  # would fail if the (undefined) connection were looked up now
    assert client.conn_id == "lms_api" and ScimClient().conn_id == "lms_directory"
    with pytest.raises(ValueError):
        XapiClient("lms_api", base_url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        XapiClient("lms_api", auth=BasicAuth("lrs", SECRET))


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        ("/lrs/xapi/statements?cursor=a%3D", "https://lrs.example.com:8443/lrs/xapi/statements?cursor=a%3D"),
        (
            "https://lrs.example.com:8443/lrs/xapi/statements?cursor=b",
            "https://lrs.example.com:8443/lrs/xapi/statements?cursor=b",
        ),
        ("statements?cursor=c", "https://lrs.example.com:8443/lrs/xapi/statements?cursor=c"),
        ("?cursor=d", "https://lrs.example.com:8443/lrs/xapi/statements?cursor=d"),
        ("/more/abc", "https://lrs.example.com:8443/more/abc"),
    ],
)
def test_more_links_resolve_against_the_server_root_or_endpoint(more, expected):
    client = XapiClient(base_url="https://lrs.example.com:8443/lrs/xapi")
    assert client.resolve_more(more) == expected


@pytest.mark.parametrize(
    "more",
    [
        "https://elsewhere.example/xapi/statements?x=1",
        "//elsewhere.example/x",
        "http://lrs.example.com:8443/x",
    ],
)
def test_more_links_to_another_origin_are_refused(more):
    client = XapiClient(base_url="https://lrs.example.com:8443/xapi", auth=BasicAuth("lrs", SECRET))
    with pytest.raises(SourceRefusedError, match="another server"):
        client.resolve_more(more)


def test_display_url_drops_user_info():
    assert display_url("https://user:pw@lrs.example.com/xapi?x=1#frag") == "https://lrs.example.com/xapi?x=1"


# -- Retry-After and backoff -----------------------------------------------------------------------

NOW = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Mon, 01 Jan 2024 00:00:30 GMT", 30.0),
        ("Sunday, 31-Dec-23 23:59:00 GMT", 0.0),  # in the past: no wait
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header, expected):
    assert parse_retry_after(header, now=NOW) == expected


def test_backoff_is_jittered_exponential_and_capped():
    policy = RetryPolicy(
        attempts=5, initial_backoff_seconds=1.0, max_backoff_seconds=4.0, max_retry_after_seconds=10
    )
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        waits = [policy.backoff_seconds(failures) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits) and max(waits) > ceiling / 2
    assert policy.retry_after_wait(3) == 3 and policy.retry_after_wait(3600) == 10
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (429, "", {}, True),
        (403, "", {"Retry-After": "10"}, True),
        (403, '{"error": "Rate limit exceeded"}', {}, True),
        (403, "Request throttled", {}, True),
        (403, "", {"X-RateLimit-Remaining": "0"}, True),
        (403, '{"error": "forbidden for this account"}', {}, False),
        (401, "rate limit", {}, False),
        (503, "", {"Retry-After": "1"}, False),
    ],
)
def test_rate_limit_detection(status, body, headers, expected):
    assert looks_rate_limited(make_response(status, body, headers)) is expected


def test_error_detail_and_scrub():
    assert (
        error_detail(make_response(400, '{"schemas": [], "detail": "bad  filter\\n here"}'))
        == "bad filter here"
    )
    assert error_detail(make_response(500, "<html>" + "x" * 1000)).endswith("...")
    assert scrub(f"token {SECRET} and abc", [SECRET, "abc", ""]) == "token *** and abc"  # short ones kept


# -- timestamps -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T08:00:00Z", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("2024-03-01T08:00:00.123z", datetime(2024, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)),
        ("2024-03-01T08:00:00+00:00", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("2024-03-01T09:30:00+01:30", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("2024-03-01T03:00:00-0500", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("2024-03-01T08:00:00.123456789Z", datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)),
        (" 2024-03-01T08:00:00Z ", datetime(2024, 3, 1, 8, tzinfo=UTC)),
    ],
)
def test_timestamps_with_any_offset_parse_to_utc(text, expected):
    parsed = parse_xapi_timestamp(text)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["2024-03-01T08:00:00", "2024-03-01T08:00:00.5", "2024-03-01"])
def test_timezone_less_timestamps_raise_a_specific_error(text):
    with pytest.raises(TimezoneMissingError, match="no timezone"):
        parse_xapi_timestamp(text)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", None, 1709280000])
def test_garbage_timestamps_raise(text):
    with pytest.raises(XapiTimestampError) as raised:
        parse_xapi_timestamp(text)
    assert not isinstance(raised.value, TimezoneMissingError) and isinstance(raised.value, ValueError)


def test_statement_stored_at_names_the_statement():
    assert statement_stored_at({"id": "a", "stored": "2024-03-01T08:00:00Z"}) == datetime(
        2024, 3, 1, 8, tzinfo=UTC
    )
    with pytest.raises(TimezoneMissingError, match="statement b: stored"):
        statement_stored_at({"id": "b", "stored": "2024-03-01T08:00:00"})
    with pytest.raises(XapiTimestampError, match="statement c: no 'stored'"):
        statement_stored_at({"id": "c"})


def test_outgoing_times_are_utc_with_z_and_never_naive():
    assert (
        format_xapi_timestamp(datetime(2024, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=1))))
        == "2024-03-01T08:00:00Z"
    )
    assert (
        format_xapi_timestamp(datetime(2024, 3, 1, 8, 0, 0, 1500, tzinfo=UTC))
        == "2024-03-01T08:00:00.001500Z"
    )
    with pytest.raises(ValueError, match="no timezone"):
        format_xapi_timestamp(datetime(2024, 3, 1, 8))
    with pytest.raises(ValueError):
        XapiClient(base_url="http://127.0.0.1:1").iter_statement_pages(datetime(2024, 3, 1))
    assert (
        last_modified_filter(datetime(2024, 1, 1, tzinfo=UTC))
        == 'meta.lastModified gt "2024-01-01T00:00:00Z"'
    )


# -- OAuth2 client credentials -------------------------------------------------------------------


def oauth_stub(stub, api_accepts: Callable[[str], bool]) -> tuple[StubServer, list[StubRequest]]:
    """A token endpoint issuing tok-1, tok-2, ... and an xAPI /about guarded by `api_accepts(token)`."""
    fetches: list[StubRequest] = []

    def app(request: StubRequest) -> Reply:
        if request.path == "/oauth/token":
            fetches.append(request)
            return reply({"access_token": f"tok-{len(fetches)}", "token_type": "bearer", "expires_in": 600})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not api_accepts(token):
            return reply({"error": "invalid token"}, 401, {"WWW-Authenticate": "Bearer"})
        return reply({"version": ["1.0.3"]}, headers={"X-Experience-API-Version": "1.0.3"})

    return stub(app), fetches


def oauth_client(
    server: StubServer, clock: Callable[[], float] = lambda: 0.0
) -> tuple[XapiClient, OAuth2ClientCredentials]:
    auth = OAuth2ClientCredentials(
        token_url=server.base_url + "/oauth/token",
        client_id="turnover-signals",
        client_secret=SECRET,
        scope="statements/read",
        clock=clock,
    )
    return xapi_client(server, auth=auth), auth


def test_oauth_token_is_fetched_once_and_cached_until_shortly_before_expiry(stub):
    server, fetches = oauth_stub(stub, lambda token: token.startswith("tok-"))
    now = [1000.0]
    client, auth = oauth_client(server, clock=lambda: now[0])
    assert client.about() == {"version": ["1.0.3"]}
    assert client.about() == {"version": ["1.0.3"]}
    assert len(fetches) == 1
    form = {key: values[0] for key, values in parse_qs(fetches[0].body.decode()).items()}
    assert form == {"grant_type": "client_credentials", "scope": "statements/read"}
    expected_basic = base64.b64encode(f"turnover-signals:{SECRET}".encode()).decode()
    assert fetches[0].headers["Authorization"] == f"Basic {expected_basic}"

    now[0] += 600 - 60 - 1  # still inside the lifetime minus the refresh margin
    assert auth.access_token(client) == "tok-1"
    now[0] += 2
    assert auth.access_token(client) == "tok-2" and len(fetches) == 2
    api_tokens = [r.headers["Authorization"] for r in server.requests if r.path == "/xapi/about"]
    assert api_tokens == ["Bearer tok-1", "Bearer tok-1"]


def test_oauth_401_refreshes_the_token_once(stub):
    server, fetches = oauth_stub(stub, lambda token: token != "tok-1")  # tok-1 was revoked
    client, _ = oauth_client(server)
    assert client.about() == {"version": ["1.0.3"]}
    assert len(fetches) == 2

    server, fetches = oauth_stub(stub, lambda token: False)
    client, _ = oauth_client(server)
    with pytest.raises(SourceRefusedError) as raised:
        client.about()
    assert len(fetches) == 2, "one refresh, then give up"
    assert len([r for r in server.requests if r.path == "/xapi/about"]) == 2
    message = str(raised.value)
    assert "HTTP 401" in message and "freshly fetched token" in message and "not retried" in message
    assert SECRET not in message and "tok-" not in message


def test_rejected_client_credentials_are_refused_without_leaking_them(stub):
    def app(request: StubRequest) -> Reply:
        # A careless token endpoint that echoes what it received.
        return reply({"error": "invalid_client", "error_description": f"bad secret {SECRET}"}, 401)

    server = stub(app)
    client, _ = oauth_client(server)
    with pytest.raises(SourceRefusedError) as raised:
        client.about()
    message = str(raised.value)
    assert "OAuth2 token endpoint" in message and "turnover-signals" in message
    assert SECRET not in message and "***" in message
    assert len(server.requests) == 1


# -- errors carry no secrets -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 400, 503])
def test_error_messages_never_carry_credentials(stub, status):
    basic = base64.b64encode(f"lrs:{SECRET}".encode()).decode()

    def app(request: StubRequest) -> Reply:
        return reply({"error": f"denied for {request.headers.get('Authorization')} / {SECRET}"}, status)

    server = stub(app)
    with pytest.raises(TurnoverSignalsError) as raised:
        xapi_client(server, auth=BasicAuth("lrs", SECRET)).about()
    assert isinstance(raised.value, SourceUnavailableError if status == 503 else SourceRefusedError)
    message = str(raised.value)
    assert SECRET not in message and basic not in message
    assert server.base_url + "/xapi/about" in message and "Next step:" in message
    assert len(server.requests) == (FAST_RETRY.attempts if status == 503 else 1)

    token_server = stub(
        lambda request: reply({"detail": f"token {request.headers.get('Authorization')}"}, status)
    )
    scim = ScimClient(
        base_url=token_server.base_url + "/scim/v2",
        auth=BearerToken(SECRET),
        retry=FAST_RETRY,
        sleep=lambda seconds: None,
    )
    with pytest.raises(TurnoverSignalsError) as raised:
        scim.supports_filter()
    assert SECRET not in str(raised.value)


# -- xAPI paging quirks ----------------------------------------------------------------------------


def scripted_lrs(
    stub, pages: dict[str, tuple[list[dict[str, Any]], Any]], headers: dict[str, str] | None = None
):
    """An LRS answering each request path (with query) from `pages`: path -> (statements, more)."""

    def app(request: StubRequest) -> Reply:
        key = request.path if request.path in pages else urlsplit(request.path).path
        statements, more = pages[key]
        return reply({"statements": statements, "more": more}, headers=headers or {})

    return stub(app)


def test_trailing_empty_pages_absolute_and_relative_more_links_and_missing_headers(stub):
    pages: dict[str, tuple[list[dict[str, Any]], Any]] = {}
    server = scripted_lrs(stub, pages)
    pages.update(
        {
            "/xapi/statements": ([statement(1), statement(2)], "/xapi/statements/page/2"),
            "/xapi/statements/page/2": ([statement(3)], server.base_url + "/xapi/statements/page/3"),
            "/xapi/statements/page/3": ([], "statements/page/4"),  # empty, with an endpoint-relative more
            "/xapi/statements/page/4": ([statement(4)], "/xapi/statements/page/5"),
            "/xapi/statements/page/5": ([], None),  # a final empty page, more null
        }
    )
    client = xapi_client(server)
    listing = client.iter_statement_pages(
        datetime(2024, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=1))), limit=2
    )
    pages_read = list(listing)
    assert [s["id"] for page in pages_read for s in page.statements] == [
        statement(n)["id"] for n in (1, 2, 3, 4)
    ]
    assert listing.complete and listing.pages == 5 and listing.consistent_through is None
    assert all(page.xapi_version is None and page.consistent_through is None for page in pages_read)
    assert pages_read[-1].more == "" and pages_read[-1].next_url is None
    first = server.requests[0]
    assert first.query == {"since": "2024-03-01T08:00:00Z", "limit": "2", "ascending": "true"}
    assert all(r.headers["X-Experience-API-Version"] == "1.0.3" for r in server.requests)
    assert all(r.headers["Authorization"].startswith("Basic ") for r in server.requests)


def test_more_absent_ends_the_listing_and_consistent_through_is_the_minimum(stub):
    answers = iter(["2024-03-01T10:00:00Z", "2024-03-01T09:00:00+00:00"])

    def app(request: StubRequest) -> Reply:
        headers = {"X-Experience-API-Version": "1.0.3", "X-Experience-API-Consistent-Through": next(answers)}
        if request.path.startswith("/xapi/statements?"):
            return reply({"statements": [statement(1)], "more": "/xapi/statements/next"}, headers=headers)
        return reply({"statements": [statement(2)]}, headers=headers)

    listing = xapi_client(stub(app)).iter_statement_pages(None, limit=1)
    assert [page.consistent_through.hour for page in listing] == [10, 9]
    assert listing.consistent_through == datetime(2024, 3, 1, 9, tzinfo=UTC) and listing.complete


def test_empty_pages_with_fresh_more_links_forever_are_stopped(stub):
    def app(request: StubRequest) -> Reply:
        return reply({"statements": [], "more": f"/xapi/statements?cursor={len(server.requests)}"})

    server = stub(app)
    with pytest.raises(PaginationLoopError) as raised:
        list(xapi_client(server, max_stalled_pages=3).iter_statement_pages(None))
    assert len(server.requests) == 3
    assert "3 consecutive pages brought no new statement" in str(raised.value)
    assert "runbook-lms-pagination-loop" in str(raised.value)


def test_a_page_that_is_not_a_statement_result_is_refused(stub):
    server = stub(lambda request: reply({"version": ["1.0.3"]}))
    with pytest.raises(SourceRefusedError, match="not a StatementResult"):
        list(xapi_client(server).iter_statement_pages(None))
    assert len(server.requests) == 1


# -- SCIM paging quirks ------------------------------------------------------------------------------


def scim_stub(stub, users: list[dict[str, Any]], *, filter_supported: Any = True, ignore_start_index=False):
    def app(request: StubRequest) -> Reply:
        path = urlsplit(request.path).path
        if path == "/scim/v2/ServiceProviderConfig":
            if filter_supported is None:
                return reply({"detail": "not found"}, 404)
            return reply({"filter": {"supported": filter_supported}})
        query = request.query
        start = 1 if ignore_start_index else int(query.get("startIndex", 1))
        count = int(query.get("count", 100))
        page = users[start - 1 : start - 1 + count]
        document = {"totalResults": len(users), "itemsPerPage": len(page), "startIndex": start}
        if page:
            document["Resources"] = page  # omitted when empty, as RFC 7644 allows
        return reply(document, headers={"Content-Type": "application/scim+json"})

    return stub(app)


def scim_client(server: StubServer, **kwargs: Any) -> ScimClient:
    return ScimClient(
        base_url=server.base_url + "/scim/v2",
        auth=BearerToken("tok-scim"),
        retry=FAST_RETRY,
        sleep=lambda seconds: None,
        **kwargs,
    )


USERS = [{"id": f"u{n:02d}", "meta": {"lastModified": "2024-01-01T00:00:00Z"}} for n in range(1, 8)]


@pytest.mark.parametrize(
    ("filter_supported", "expected_mode"), [(True, "incremental"), (False, "full"), (None, "full")]
)
def test_scim_uses_the_filter_only_when_supported(stub, filter_supported, expected_mode):
    server = scim_stub(stub, USERS, filter_supported=filter_supported)
    listing = scim_client(server).iter_users(datetime(2024, 1, 1, tzinfo=UTC), page_size=3)
    assert [user["id"] for user in listing] == [user["id"] for user in USERS]
    assert listing.mode == expected_mode and listing.complete
    user_requests = [r for r in server.requests if "/Users" in r.path]
    assert [r.query["startIndex"] for r in user_requests] == ["1", "4", "7"]
    assert all(r.headers["Accept"] == "application/scim+json, application/json" for r in server.requests)
    assert all(r.headers["Authorization"] == "Bearer tok-scim" for r in server.requests)
    filters = {r.query.get("filter") for r in user_requests}
    assert filters == (
        {'meta.lastModified gt "2024-01-01T00:00:00Z"'} if expected_mode == "incremental" else {None}
    )


def test_scim_server_ignoring_start_index_is_detected(stub):
    server = scim_stub(stub, USERS, ignore_start_index=True)
    with pytest.raises(PaginationLoopError, match="ignores startIndex") as raised:
        list(scim_client(server).iter_users(page_size=3))
    assert len(server.requests) == 2
    assert USERS[0]["id"] not in str(raised.value)  # an LMS user id is personal data


def test_scim_empty_directory_and_missing_resources(stub):
    listing = scim_client(scim_stub(stub, [])).iter_users(page_size=3)
    assert list(listing) == [] and listing.complete and listing.mode == "full"


# -- statements beyond the bounds (issue 22, points 11 and 17) ---------------------------------------


def nested_statement(number: int, depth: int) -> bytes:
    """A statement whose result extension nests `depth` arrays (the statement itself is 3 levels more)."""
    head = json.dumps(statement(number))[:-1]
    return f'{head}, "result": {{"extensions": {{"x": {"[" * depth}{"]" * depth}}}}}}}'.encode()


def statements_body(statements: list[bytes], more: str = "") -> bytes:
    return b'{"more": ' + json.dumps(more).encode() + b', "statements": [' + b", ".join(statements) + b"]}"


def test_a_statement_nested_10000_deep_is_refused_and_its_page_still_loads(stub):
    deep = nested_statement(2, 10_000)
    page = statements_body([json.dumps(statement(1)).encode(), deep, json.dumps(statement(3)).encode()])
    server = stub(lambda request: (200, {"Content-Type": "application/json"}, page))
    pages = list(xapi_client(server).iter_statement_pages(None))
    assert [s["id"] for s in pages[0].statements] == [statement(1)["id"], statement(3)["id"]]
    (refusal,) = pages[0].refused
    assert (refusal.position, refusal.reason, refusal.detail) == (
        2,
        "statement nests deeper than lms.max_statement_depth",
        "nested 10003 levels deep, over 64",
    )
    assert (refusal.statement_id, refusal.stored) == (statement(2)["id"], statement(2)["stored"])
    assert refusal.size_bytes == len(deep) and refusal.sha256 == hashlib.sha256(deep).hexdigest()
    assert refusal.excerpt.encode() == deep[:4096] and refusal.is_excerpt_truncated
    assert pages[0].received == 3 and len(server.requests) == 1  # no retry: nothing transient about it


def test_statements_within_the_bounds_keep_their_bytes_as_received():
    texts = [b'{"id": "a",  "n": [[1]]}', nested_statement(2, 61), '{"id":"é"}'.encode()]
    decoded = decode_statement_page(statements_body(texts, more="/next"), StatementBounds())
    assert decoded.texts == texts and decoded.refused == [] and decoded.more == "/next"
    assert decoded.statements == [json.loads(text) for text in texts]


def test_an_unparsed_page_reads_only_the_ids_and_parses_its_statements_when_they_are_read(monkeypatch):
    texts = [b'{"id": "a",  "n": [[1]]}', b'{"id": 7}', b'{"verb": {"id": "v"}}', '{"id":"é"}'.encode()]
    parses: list[Any] = []
    loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, **kw: parses.append(text) or loads(text, **kw))
    decoded = decode_statement_page(
        statements_body(texts, more="/next"), StatementBounds(), parse_statements=False
    )
    assert decoded.texts == texts and decoded.refused == [] and decoded.more == "/next"
    assert decoded.statement_ids == ["a", "é"]  # string ids only, as the parsed page's
    assert len(decoded.statements) == 4 and parses == []
    assert list(decoded.statements) == [loads(text) for text in texts] and parses == texts


def test_an_unparsed_page_compares_equal_to_the_parsed_page_of_the_same_body():
    texts = [b'{"id": "a", "n": [1]}', '{"id":"é"}'.encode()]
    body = statements_body(texts)
    parsed = decode_statement_page(body, StatementBounds()).statements
    unparsed = decode_statement_page(body, StatementBounds(), parse_statements=False).statements
    assert unparsed == parsed and parsed == unparsed and unparsed != tuple(parsed)  # as a list would
    assert unparsed == decode_statement_page(body, StatementBounds(), parse_statements=False).statements
    assert unparsed != parsed[:1] and unparsed != [parsed[0], {"id": "b"}] and unparsed != "ab"
    with pytest.raises(TypeError):
        hash(unparsed)


def test_an_unparsed_page_with_a_statement_that_is_not_an_object_is_parsed_as_usual():
    texts = [b'{"id": "a"}', b"[1, 2]", b"null"]
    decoded = decode_statement_page(statements_body(texts), StatementBounds(), parse_statements=False)
    assert decoded.statement_ids is None and decoded.texts == texts
    assert decoded.statements == [{"id": "a"}, [1, 2], None]


# msgspec splits a page as long as Python's recursion limit allows; the iterative scanner the deeper ones
@pytest.mark.parametrize("depth", [62, 900, 10_000])
def test_the_depth_bound_holds_however_the_page_is_split(depth):
    page = statements_body([nested_statement(1, depth), json.dumps(statement(2)).encode()], more="/m")
    decoded = decode_statement_page(page, StatementBounds(max_depth=64))
    assert [r.detail for r in decoded.refused] == [f"nested {depth + 3} levels deep, over 64"]
    assert decoded.statements == [statement(2)] and decoded.more == "/m"


def test_a_statement_over_the_size_bound_is_refused_with_an_excerpt_its_size_and_sha256():
    big = json.dumps({**statement(1), "result": {"response": "é" * 5_000_000}}, ensure_ascii=False).encode()
    cut = big.index("é".encode()) + 3  # in the middle of the second "é"
    decoded = decode_statement_page(
        statements_body([big, json.dumps(statement(2)).encode()]), StatementBounds(excerpt_bytes=cut)
    )
    (refusal,) = decoded.refused
    assert refusal.reason == "statement is larger than lms.max_statement_bytes"
    assert refusal.detail == f"{len(big)} bytes, over 1048576"
    assert refusal.sha256 == hashlib.sha256(big).hexdigest() and refusal.statement_id == statement(1)["id"]
    assert refusal.excerpt.encode() == big[: cut - 1]  # never mid-character
    assert decoded.statements == [statement(2)]


@pytest.mark.parametrize("parse_statements", [True, False])
def test_a_statement_postgresql_cannot_store_is_refused_and_the_others_of_its_page_kept(parse_statements):
    nul = json.dumps({**statement(1), "result": {"response": "a\u0000b"}}).encode()  # "\u0000" on the wire
    kept = [
        b'{"id": "c", "result": {"response": "\\\\u0000 is text here"}}',  # an escaped backslash, then u0000
        b'{"id": "d", "result": {"response": "\\ud83d\\ude00"}}',  # a surrogate pair: one character
        b'{"id": "e", "result": {"response": "\\u00e9\\uD7FF"}}',
    ]
    decoded = decode_statement_page(
        statements_body([kept[0], nul, *kept[1:]]), StatementBounds(), parse_statements=parse_statements
    )
    (refusal,) = decoded.refused
    assert (refusal.position, refusal.reason, refusal.detail, refusal.statement_id) == (
        2,
        "statement holds JSON that PostgreSQL cannot store",
        "a \\u0000 (NUL) in a string",
        statement(1)["id"],
    )
    assert "\x00" not in refusal.excerpt and refusal.sha256 == hashlib.sha256(nul).hexdigest()
    assert decoded.texts == kept and list(decoded.statements) == [json.loads(text) for text in kept]


def test_a_statement_with_an_unpaired_surrogate_is_refused_and_the_others_of_its_page_kept():
    lone = b'{"id": "' + statement(2)["id"].encode() + b'", "result": {"response": "\\ud800 alone"}}'
    decoded = decode_statement_page(statements_body([lone, b'{"id": "b"}']), StatementBounds())
    (refusal,) = decoded.refused
    assert (refusal.position, refusal.reason, refusal.detail, refusal.statement_id) == (
        1,
        "statement holds JSON that PostgreSQL cannot store",
        "an unpaired UTF-16 surrogate escape in a string",
        statement(2)["id"],
    )
    assert decoded.statements == [{"id": "b"}]


def test_a_refused_statement_keeps_no_id_the_warehouse_cannot_store():
    odd_id = json.dumps({"id": "a\u0000b", "stored": "2026-03-02T09:04:00\ud800Z", "verb": {}}).encode()
    (refusal,) = decode_statement_page(statements_body([odd_id]), StatementBounds()).refused
    assert refusal.reason == "statement holds JSON that PostgreSQL cannot store"
    assert (refusal.statement_id, refusal.stored) == (None, None)  # named by its sha256 instead


def test_a_voided_statement_fetched_alone_with_a_nan_is_refused():
    client = XapiClient(base_url="http://127.0.0.1:1/xapi")  # decoding only: nothing is requested
    refusal = client._decode_single_statement(b'{"id": "v", "result": {"score": {"raw": NaN}}}')  # noqa: SLF001
    assert isinstance(refusal, RefusedStatement) and refusal.statement_id == "v"
    assert refusal.detail == "NaN or Infinity, which JSON has no number for"


def test_a_page_only_json_reads_refuses_its_statements_that_json_has_no_number_for():
    body = b'{"statements": [{"id": "a", "result": {"score": {"raw": NaN}}}, {"id": "b"}]}'
    decoded = decode_statement_page(body, StatementBounds())
    (refusal,) = decoded.refused
    assert (refusal.position, refusal.reason, refusal.detail, refusal.statement_id) == (
        1,
        "statement holds JSON that PostgreSQL cannot store",
        "NaN or Infinity, which JSON has no number for",
        "a",
    )
    assert decoded.statements == [{"id": "b"}]


@pytest.mark.parametrize(
    "body",
    [
        b'{"statements": [' + b"[" * 5000,  # cut short in the deep part
        b'{"statements": [' + b"[" * 5000 + b"]" * 5000 + b",]}",
        b'{"statements": [{"id": "a"},,{"id": "b"}]}',
    ],
)
def test_a_deep_page_that_is_not_json_is_a_truncated_transfer(body):
    with pytest.raises(ValueError):
        decode_statement_page(body, StatementBounds())


def test_a_deep_document_that_is_not_a_statement_result_is_said_so():
    decoded = decode_statement_page(b'{"other": ' + b"[" * 5000 + b"]" * 5000 + b"}", StatementBounds())
    assert not decoded.is_statement_result


def test_a_deep_document_from_any_endpoint_is_refused_not_a_recursion_error(stub):
    deep = b'{"Resources": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    server = stub(lambda request: (200, {"Content-Type": "application/json"}, deep))
    with pytest.raises(SourceRefusedError, match="nests deeper than the JSON parser can follow"):
        xapi_client(server).about()
    assert len(server.requests) == 1


@pytest.mark.parametrize("depth", [0, 257])
def test_the_depth_bound_stays_within_what_json_can_parse(depth):
    with pytest.raises(ValueError, match="max_depth"):
        StatementBounds(max_depth=depth)


def test_a_voided_statement_beyond_the_bounds_stays_unknown_instead_of_failing(stub, caplog):
    answers = {
        "1": json.dumps(statement(1)).encode(),
        "2": nested_statement(2, 10_000),
        "3": json.dumps({**statement(3), "result": {"response": "x" * 2_000_000}}).encode(),
    }
    server = stub(lambda request: (200, {}, answers[request.query["voidedStatementId"]]))
    client = xapi_client(server)
    assert client.voided_statement("1") is None  # the id differs: not the statement asked for
    assert [client.voided_statement(key) for key in ("2", "3")] == [None, None]
    assert "nested 10003 levels deep, over 64" in caplog.text and "2000" in caplog.text
    answers["4"] = json.dumps({**statement(4), "id": "4"}).encode()
    assert client.voided_statement("4") == {**statement(4), "id": "4"}
