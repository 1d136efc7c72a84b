"""The xAPI and SCIM clients against the sample LMS: paging, boundaries, every fault kind, auth.

Waits between attempts go through a recording `sleep`, so Retry-After is asserted exactly without
sleeping through it (the sample server's request log has no timestamps); one test lets a real
one-second Retry-After elapse.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from turnover_demo.sample_servers.lms_server import LmsSampleServer, iter_jsonl
from turnover_demo.sample_servers.sample_data import VERBS
from turnover_signals.errors import SourceRefusedError, SourceUnavailableError
from turnover_signals.sources.http_base import BasicAuth, BearerToken, PaginationLoopError, RetryPolicy
from turnover_signals.sources.scim import ScimClient
from turnover_signals.sources.xapi import XapiClient, parse_xapi_timestamp

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(
    attempts=4, initial_backoff_seconds=0.001, max_backoff_seconds=0.005, max_retry_after_seconds=30.0
)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class SleepRecorder:
    """Stands in for time.sleep: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def xapi_client(server: LmsSampleServer, **kwargs: Any) -> XapiClient:
    kwargs.setdefault("auth", BasicAuth(*server.xapi_credentials))
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeout", (2.0, 5.0))
    kwargs.setdefault("sleep", SleepRecorder())
    return XapiClient(base_url=server.base_url + server.xapi_base_path, **kwargs)


def scim_client(server: LmsSampleServer, **kwargs: Any) -> ScimClient:
    kwargs.setdefault("auth", BearerToken(server.scim_token))
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("sleep", SleepRecorder())
    return ScimClient(base_url=server.base_url + server.scim_base_path, **kwargs)


def visible_statements(data_dir: Path) -> list[dict[str, Any]]:
    """What a normal query returns, in ascending (stored, id) order: voided statements left out."""
    statements = list(iter_jsonl(data_dir / "lms" / "statements.jsonl"))
    voided = {s["object"]["id"] for s in statements if s["verb"]["id"] == VERBS["voided"]}
    kept = [s for s in statements if s["id"] not in voided]
    return sorted(kept, key=lambda s: (parse_xapi_timestamp(s["stored"]), s["id"]))


def all_ids(client: XapiClient, since: datetime = EPOCH, **kwargs: Any) -> list[str]:
    kwargs.setdefault("limit", 25)
    return [s["id"] for page in client.iter_statement_pages(since, **kwargs) for s in page.statements]


def statement_requests(server: LmsSampleServer) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/xapi/statements")]


# -- paging -----------------------------------------------------------------------------------------


def test_pages_every_statement_exactly_once_until_more_is_empty(
    lms_server: LmsSampleServer, lms_data_dir: Path
) -> None:
    expected = [s["id"] for s in visible_statements(lms_data_dir)]
    client = xapi_client(lms_server)
    listing = client.iter_statement_pages(EPOCH, limit=7)
    pages = list(listing)
    ids = [s["id"] for page in pages for s in page.statements]
    assert ids == expected, "ascending by stored, ties broken by id, no gaps or repeats"
    assert listing.complete and listing.pages == len(pages) == -(-len(expected) // 7)
    assert [len(page.statements) for page in pages[:-1]] == [7] * (len(pages) - 1)
    assert pages[-1].more == "" and all(page.more.startswith("/xapi/statements?") for page in pages[:-1])
    assert all(not page.already_seen_ids for page in pages)
    assert pages[0].request_url.startswith(
        lms_server.base_url + "/xapi/statements?since=2000-01-01T00%3A00%3A00Z"
    )
    assert all(page.raw_body_bytes == len(page.raw_body) > 0 for page in pages)
    assert all(page.xapi_version == "1.0.3" for page in pages)
    consistent = [page.consistent_through for page in pages]
    assert None not in consistent and listing.consistent_through == min(consistent)


def test_descending_order_and_a_server_cap_on_limit(lms_server_factory: Any, lms_data_dir: Path) -> None:
    server = lms_server_factory(data_dir=lms_data_dir, max_page_size=20)
    expected = [s["id"] for s in visible_statements(lms_data_dir)]
    client = xapi_client(server)
    listing = client.iter_statement_pages(EPOCH, limit=50, ascending=False)
    assert [s["id"] for page in listing for s in page.statements] == expected[::-1]
    assert listing.pages == len(expected) // 20 and listing.complete
    assert "ascending=false" in statement_requests(server)[0].path


def test_since_is_exclusive_and_until_inclusive_on_stored(
    lms_server: LmsSampleServer, lms_data_dir: Path
) -> None:
    visible = visible_statements(lms_data_dir)
    stored = sorted({parse_xapi_timestamp(s["stored"]) for s in visible})
    since, until = stored[2], stored[6]
    expected = [s["id"] for s in visible if since < parse_xapi_timestamp(s["stored"]) <= until]
    client = xapi_client(lms_server)
    assert all_ids(client, since, until=until, limit=4) == expected and len(expected) >= 10
    in_berlin_summer = timezone(timedelta(hours=2))
    assert (
        all_ids(client, since.astimezone(in_berlin_summer), until=until.astimezone(in_berlin_summer))
        == expected
    )
    first_stored = [s["id"] for s in visible if parse_xapi_timestamp(s["stored"]) == stored[0]]
    assert all_ids(client, until=stored[0]) == first_stored and len(first_stored) == 3
    assert all_ids(client, stored[-1]) == []


# -- faults -----------------------------------------------------------------------------------------


def test_server_errors_are_retried_then_paging_recovers(lms_server_factory: Any, lms_data_dir: Path) -> None:
    server = lms_server_factory(data_dir=lms_data_dir)
    sleep = SleepRecorder()
    client = xapi_client(server, sleep=sleep)
    listing = client.iter_statement_pages(EPOCH, limit=25)
    first = next(listing)
    server.inject_fault("status", status=500, count=2)  # hits the second page twice
    rest = list(listing)
    assert [s["id"] for page in [first, *rest] for s in page.statements] == [
        s["id"] for s in visible_statements(lms_data_dir)
    ]
    assert len(sleep.waits) == 2 and all(0 <= wait <= FAST_RETRY.max_backoff_seconds for wait in sleep.waits)
    assert client.retries == 2


def test_429_waits_for_retry_after(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    sleep = SleepRecorder()
    client = xapi_client(server, sleep=sleep)
    server.inject_fault("status", status=429, retry_after=3)
    assert len(all_ids(client, limit=500)) == 120
    assert sleep.waits == [3.0]
    assert len(statement_requests(server)) == 2

    capped = xapi_client(server, sleep=sleep, retry=RetryPolicy(attempts=3, max_retry_after_seconds=0.5))
    sleep.waits.clear()
    server.inject_fault("status", status=429, retry_after=3600)
    all_ids(capped, limit=500)
    assert sleep.waits == [0.5], "Retry-After is capped by max_retry_after_seconds"


def test_429_retry_after_really_elapses(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = xapi_client(server, sleep=time.sleep)
    server.inject_fault("status", status=429, retry_after=1)
    started = time.monotonic()
    assert len(all_ids(client, limit=500)) == 120
    assert time.monotonic() - started >= 0.95


def test_403_rate_limit_is_retried_but_a_plain_403_is_not(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    sleep = SleepRecorder()
    client = xapi_client(server, sleep=sleep)
    server.inject_fault("status", status=403, body="Rate limit exceeded: 100 requests per minute")
    assert len(all_ids(client, limit=500)) == 120 and len(sleep.waits) == 1

    server.clear_requests()
    server.inject_fault("status", status=403, body="this account may not read statements")
    with pytest.raises(SourceRefusedError) as raised:
        all_ids(client)
    assert len(statement_requests(server)) == 1
    assert "HTTP 403" in str(raised.value) and "not retried" in str(raised.value)


def test_retries_are_bounded_and_end_in_a_clear_error(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = xapi_client(server)
    server.inject_fault("status", status=503, count=10)
    with pytest.raises(SourceUnavailableError) as raised:
        all_ids(client)
    assert len(statement_requests(server)) == FAST_RETRY.attempts
    message = str(raised.value)
    assert f"{server.base_url}/xapi/statements?since=" in message and "failed 4 time(s)" in message
    assert "HTTP 503" in message and "Next step:" in message and "runbook-lms-unavailable" in message


def test_read_timeout_is_retried(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = xapi_client(server, timeout=(2.0, 0.2))
    server.inject_fault("delay", seconds=0.6)
    assert len(all_ids(client, limit=500)) == 120
    assert client.retries == 1 and len(statement_requests(server)) == 2


def test_connection_reset_mid_page_is_retried(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = xapi_client(server)
    listing = client.iter_statement_pages(EPOCH, limit=25)
    next(listing)
    server.inject_fault("reset", after_bytes=200)
    assert sum(len(page.statements) for page in listing) == 95
    assert client.retries == 1


def test_malformed_json_is_retried(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = xapi_client(server)
    server.inject_fault("malformed_json")
    assert len(all_ids(client)) == 120 and client.retries == 1


# unparsed: the loader's pages, whose ids msgspec reads without parsing the statements
@pytest.mark.parametrize("parse_statements", [True, False], ids=["parsed", "unparsed"])
def test_a_repeated_page_is_tolerated_and_its_repeats_flagged(
    lms_server_factory: Any, lms_data_dir: Path, parse_statements: bool
) -> None:
    server = lms_server_factory(data_dir=lms_data_dir)
    client = xapi_client(server)
    listing = client.iter_statement_pages(EPOCH, limit=25, parse_statements=parse_statements)
    first = next(listing)
    server.inject_fault("repeat_page")
    rest = list(listing)
    repeated = rest[0]
    assert [s["id"] for s in repeated.statements] == [s["id"] for s in first.statements]
    assert repeated.already_seen_ids == {s["id"] for s in first.statements}
    ids = [s["id"] for page in [first, *rest] for s in page.statements]
    assert len(ids) == 145 and listing.already_seen == 25
    assert list(dict.fromkeys(ids)) == [s["id"] for s in visible_statements(lms_data_dir)]
    assert listing.complete


def test_a_more_loop_is_stopped_with_a_clear_error(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = xapi_client(server)
    listing = client.iter_statement_pages(EPOCH, limit=25)
    next(listing)
    server.inject_fault("more_loop", count=50)
    with pytest.raises(PaginationLoopError) as raised:
        list(listing)
    assert isinstance(raised.value, SourceUnavailableError)
    assert len(statement_requests(server)) == 2, "stopped at once, not after spinning"
    message = str(raised.value)
    assert "more link points back at a page already read" in message
    assert "runbook-lms-pagination-loop" in message and not listing.complete


def test_auth_failure_is_not_retried_and_says_so(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = xapi_client(server, auth=BasicAuth("lrs", "wrong-password"))
    with pytest.raises(SourceRefusedError) as raised:
        all_ids(client)
    assert len(statement_requests(server)) == 1
    message = str(raised.value)
    assert "HTTP 401" in message and "not retried" in message and "Basic auth as 'lrs'" in message
    assert "wrong-password" not in message and "runbook-lms-auth" in message


# -- SCIM -------------------------------------------------------------------------------------------


def test_scim_full_pull_pages_every_user_once(lms_server: LmsSampleServer, lms_data_dir: Path) -> None:
    client = scim_client(lms_server)
    listing = client.iter_users(page_size=7)
    users = list(listing)
    expected = sorted(user["id"] for user in iter_jsonl(lms_data_dir / "lms" / "users.jsonl"))
    assert [user["id"] for user in users] == expected
    assert listing.mode == "full" and listing.filter is None and listing.complete
    assert listing.pages.pages == 4 and not listing.total_results_changed


def test_scim_incremental_pull_uses_the_last_modified_filter(lms_server_factory: Any) -> None:
    server = lms_server_factory(scim_max_count=5)
    client = scim_client(server)
    assert client.supports_filter()
    tenth = datetime(2024, 1, 1, 19, 0, tzinfo=UTC)  # u0010's lastModified (09:00 + 10 h)
    listing = client.iter_users(tenth, page_size=50)  # the server caps count at 5
    assert [user["id"] for user in listing] == [f"u{n:04d}" for n in range(11, 26)]
    assert listing.mode == "incremental" and listing.pages.pages == 3
    user_requests = [r for r in server.requests if r.path.startswith("/scim/v2/Users")]
    assert all("filter=meta.lastModified+gt+%222024-01-01T19%3A00%3A00Z%22" in r.path for r in user_requests)
    assert all(r.headers["Accept"] == "application/scim+json, application/json" for r in server.requests)

    forced_full = client.iter_users(tenth, page_size=50, use_filter=False)
    assert len(list(forced_full)) == 25 and forced_full.mode == "full"


def test_scim_total_changing_mid_pull_is_flagged(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = scim_client(server)
    listing = client.iter_users(page_size=10)
    seen = [next(listing)["id"] for _ in range(10)]
    server.add_or_update_users([{"id": "u0000", "userName": "new.starter@northwind.example"}])
    seen += [user["id"] for user in listing]
    assert listing.total_results_changed and listing.complete
    assert len(seen) == len(set(seen)) == 25, "u0000 sorts first: one user shifted and was skipped once"
    assert "u0000" not in seen


def test_scim_faults_and_refusals(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    client = scim_client(server)
    server.inject_fault("status", path_prefix="/scim/v2/Users", status=502)
    server.inject_fault("reset", path_prefix="/scim/v2/Users", after_bytes=50)
    assert len(list(client.iter_users(page_size=10))) == 25 and client.retries == 2

    wrong = scim_client(server, auth=BearerToken("not-the-token"))
    server.clear_requests()
    with pytest.raises(SourceRefusedError) as raised:
        list(wrong.iter_users(page_size=10))
    assert len(server.requests) == 1 and "not-the-token" not in str(raised.value)
    assert "a static bearer token" in str(raised.value)


# -- Airflow connections ----------------------------------------------------------------------------


def test_clients_read_basic_and_bearer_auth_from_airflow_connections(
    lms_connections: dict[str, Any], lms_server: LmsSampleServer, lms_data_dir: Path
) -> None:
    xapi = XapiClient(retry=FAST_RETRY)  # connection "lms_api", from AIRFLOW_CONN_LMS_API
    scim = ScimClient(retry=FAST_RETRY)  # connection "lms_directory", from AIRFLOW_CONN_LMS_DIRECTORY
    before = len(lms_server.requests)
    assert len(all_ids(xapi, limit=500)) == len(visible_statements(lms_data_dir))
    assert len(list(scim.iter_users(page_size=100))) == 25
    assert (
        xapi.base_url == lms_server.base_url + "/xapi" and scim.base_url == lms_server.base_url + "/scim/v2"
    )
    assert xapi.settings.source_name == "Airflow connection 'lms_api'"
    schemes = {(r.path.split("?")[0], r.headers.get("Authorization")) for r in lms_server.requests[before:]}
    assert schemes == {("/xapi/statements", "Basic"), ("/scim/v2/Users", "Bearer")}


def test_a_missing_connection_is_refused_with_a_next_step(lms_connections: dict[str, Any]) -> None:
    with pytest.raises(SourceRefusedError) as raised:
        all_ids(XapiClient("lms_api_missing", retry=FAST_RETRY))
    assert "Airflow connection 'lms_api_missing'" in str(raised.value) and "is not defined" in str(
        raised.value
    )
