"""The sample servers speak their protocols correctly, and Airflow's SFTP hook works against them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paramiko
import pytest
import requests

import turnover_signals
from turnover_demo.sample_servers import sftp_server as sftp_module
from turnover_demo.sample_servers.lms_server import LmsSampleServer, iter_jsonl
from turnover_demo.sample_servers.sample_data import VERBS, sample_statements, statement_id, user_email
from turnover_demo.sample_servers.sftp_server import SftpSampleServer, find_sshd, generate_ed25519_key

pytestmark = pytest.mark.integration

XAPI_HEADERS = {"X-Experience-API-Version": "1.0.3"}
LRS_AUTH = ("lrs", "lrs-secret")
SCIM_HEADERS = {"Authorization": "Bearer scim-token"}
PLUGINS_DIR = Path(turnover_signals.__file__).resolve().parents[1]
requires_sshd = pytest.mark.skipif(
    os.geteuid() != 0 or find_sshd() is None, reason="the sshd backend needs root and OpenSSH's sshd"
)


# -- helpers -------------------------------------------------------------------------------------


def xapi_get(
    server: LmsSampleServer, path: str, params: dict[str, Any] | None = None, **kwargs: Any
) -> requests.Response:
    kwargs.setdefault("auth", LRS_AUTH)
    kwargs.setdefault("headers", XAPI_HEADERS)
    kwargs.setdefault("timeout", 5)
    return requests.get(server.base_url + path, params=params, **kwargs)


def follow_more(server: LmsSampleServer, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page from the base query until `more` is empty."""
    pages = []
    response = xapi_get(server, "/xapi/statements", params)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if not pages[-1]["more"]:
            return pages
        assert len(pages) < 1000, "more links do not end"
        response = xapi_get(server, pages[-1]["more"])


def stored_sort_key(statement: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(statement["stored"]), statement["id"]


def visible_statements(data_dir: Path) -> list[dict[str, Any]]:
    """The statements a normal query returns, in ascending (stored, id) order."""
    statements = list(iter_jsonl(data_dir / "lms" / "statements.jsonl"))
    voided = {
        s["object"]["id"]
        for s in statements
        if s["verb"]["id"] == VERBS["voided"] and s["object"]["objectType"] == "StatementRef"
    }
    return sorted((s for s in statements if s["id"] not in voided), key=stored_sort_key)


def scim_get(
    server: LmsSampleServer, path: str, params: dict[str, Any] | None = None, **kwargs: Any
) -> requests.Response:
    kwargs.setdefault("headers", SCIM_HEADERS)
    return requests.get(server.base_url + server.scim_base_path + path, params=params, timeout=5, **kwargs)


def open_sftp(
    server: SftpSampleServer, timeout: float = 5.0
) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    """A plain paramiko SFTP session with the host key pinned (for the fault-helper tests)."""
    client = paramiko.SSHClient()
    key_type, key_data = server.host_public_key.split()
    client.get_host_keys().add(
        f"[{server.host}]:{server.port}", key_type, paramiko.Ed25519Key(data=base64.b64decode(key_data))
    )
    client.connect(
        server.host,
        server.port,
        username=server.username,
        pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(server.client_private_key_pem)),
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client, client.open_sftp()


def hris_listing(files: dict[str, bytes]) -> list[str]:
    return sorted(Path(remote).name for remote in files if remote.startswith("/outbound/hris/"))


# -- xAPI statements -----------------------------------------------------------------------------


@pytest.mark.parametrize("ascending", [True, False], ids=["ascending", "descending"])
def test_following_more_returns_every_visible_statement_once(
    lms_server: LmsSampleServer, lms_data_dir: Path, ascending: bool
) -> None:
    pages = follow_more(lms_server, {"limit": 7, "ascending": str(ascending).lower()})

    returned = [statement for page in pages for statement in page["statements"]]
    expected = visible_statements(lms_data_dir)
    if not ascending:
        expected.reverse()
    assert [s["id"] for s in returned] == [s["id"] for s in expected]
    assert all(0 < len(page["statements"]) <= 7 for page in pages), "no empty or oversized page"
    assert pages[-1]["more"] == ""
    assert not {statement_id(5), statement_id(17), statement_id(42)} & {s["id"] for s in returned}
    assert sum(s["verb"]["id"] == VERBS["voided"] for s in returned) == 3, "voiding statements are returned"
    assert all(s["stored"].endswith("Z") for s in returned)


def test_limit_defaults_to_and_is_capped_at_the_max_page_size(lms_server_factory: Any) -> None:
    server = lms_server_factory(max_page_size=10)
    for params in ({}, {"limit": 0}, {"limit": 50}):
        assert len(xapi_get(server, "/xapi/statements", params).json()["statements"]) == 10
    assert len(xapi_get(server, "/xapi/statements", {"limit": 4}).json()["statements"]) == 4


def test_since_is_exclusive_and_until_inclusive_on_stored(
    lms_server: LmsSampleServer, lms_data_dir: Path
) -> None:
    visible = visible_statements(lms_data_dir)
    boundary = visible[30]["stored"]
    at_boundary = {s["id"] for s in visible if s["stored"] == boundary}
    assert len(at_boundary) == 3, "the sample data stores three statements at each time"

    def ids(params: dict[str, Any]) -> set[str]:
        return {s["id"] for page in follow_more(lms_server, params) for s in page["statements"]}

    after = ids({"since": boundary, "limit": 5})
    up_to = ids({"until": boundary, "limit": 5})
    assert not after & at_boundary
    assert at_boundary <= up_to
    assert after | up_to == {s["id"] for s in visible} and not after & up_to
    assert ids({"since": boundary, "until": boundary}) == set()
    # The same instant written with another offset selects the same statements.
    shifted = (datetime.fromisoformat(boundary) + timedelta(hours=2)).isoformat().replace("+00:00", "+02:00")
    assert ids({"until": shifted, "limit": 5}) == up_to


def test_statement_query_validation(lms_server: LmsSampleServer) -> None:
    for params in (
        {"since": "2024-03-01T08:00:00"},  # no timezone
        {"until": "yesterday"},
        {"limit": -1},
        {"ascending": "yes"},
        {"unknown": "1"},
        {"agent": '{"mbox": "mailto:a@b.example", "openid": "https://a.example"}'},
        {"statementId": statement_id(1), "since": "2024-01-01T00:00:00Z"},
        {"cursor": "not-a-cursor"},
    ):
        response = xapi_get(lms_server, "/xapi/statements", params)
        assert response.status_code == 400, params
        assert response.headers["X-Experience-API-Version"] == "1.0.3"


def test_basic_auth_and_version_header_are_enforced(lms_server: LmsSampleServer) -> None:
    assert xapi_get(lms_server, "/xapi/statements", auth=None).status_code == 401
    wrong = xapi_get(lms_server, "/xapi/statements", auth=("lrs", "wrong"))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert xapi_get(lms_server, "/xapi/statements", headers={}).status_code == 400
    assert (
        xapi_get(lms_server, "/xapi/statements", headers={"X-Experience-API-Version": "0.9"}).status_code
        == 400
    )

    ok = xapi_get(lms_server, "/xapi/statements", {"limit": 1})
    assert ok.status_code == 200
    assert ok.headers["X-Experience-API-Version"] == "1.0.3"
    assert datetime.fromisoformat(ok.headers["X-Experience-API-Consistent-Through"]).tzinfo is not None
    assert requests.get(lms_server.base_url + "/xapi/about", timeout=5).json() == {"version": ["1.0.3"]}


def test_more_link_is_opaque_relative_and_stable(lms_server: LmsSampleServer) -> None:
    first = xapi_get(lms_server, "/xapi/statements", {"limit": 5, "verb": VERBS["passed"]}).json()
    assert first["more"].startswith("/xapi/statements?")
    again = xapi_get(lms_server, first["more"])
    assert again.content == xapi_get(lms_server, first["more"]).content
    assert all(s["verb"]["id"] == VERBS["passed"] for s in again.json()["statements"]), (
        "filters ride in the cursor"
    )


def test_verb_agent_and_activity_filters(lms_server: LmsSampleServer, lms_data_dir: Path) -> None:
    visible = visible_statements(lms_data_dir)

    def ids(params: dict[str, Any]) -> list[str]:
        return [
            s["id"]
            for page in follow_more(lms_server, {**params, "ascending": "true"})
            for s in page["statements"]
        ]

    assert ids({"verb": VERBS["failed"]}) == [s["id"] for s in visible if s["verb"]["id"] == VERBS["failed"]]
    mbox = f"mailto:{user_email(3)}"
    assert ids({"agent": json.dumps({"mbox": mbox})}) == [
        s["id"] for s in visible if s["actor"].get("mbox") == mbox
    ]
    course = "https://lms.northwind.example/courses/C002"
    assert ids({"activity": course}) == [s["id"] for s in visible if s["object"].get("id") == course]
    lms_account = {"account": {"homePage": "https://lms.northwind.example", "name": "lms-sync"}}
    assert len(ids({"agent": json.dumps(lms_account), "related_agents": "true"})) == len(visible) - 3
    assert ids({"agent": json.dumps(lms_account)}) == [], "authority only counts with related_agents"


def test_single_statement_and_voided_statement_lookup(lms_server: LmsSampleServer) -> None:
    found = xapi_get(lms_server, "/xapi/statements", {"statementId": statement_id(1)})
    assert found.status_code == 200 and found.json()["id"] == statement_id(1)
    assert xapi_get(lms_server, "/xapi/statements", {"statementId": statement_id(5)}).status_code == 404
    voided = xapi_get(lms_server, "/xapi/statements", {"voidedStatementId": statement_id(5)})
    assert voided.status_code == 200 and voided.json()["id"] == statement_id(5)
    assert xapi_get(lms_server, "/xapi/statements", {"voidedStatementId": statement_id(1)}).status_code == 404


def test_added_statements_are_stored_now_and_void_their_targets(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    watermark = max((s for page in follow_more(server, {}) for s in page["statements"]), key=stored_sort_key)[
        "stored"
    ]
    stale_more = xapi_get(server, "/xapi/statements", {"limit": 100, "ascending": "true"}).json()["more"]

    template = {
        k: v for k, v in sample_statements(count=1, voided=())[0].items() if k not in ("id", "stored")
    }
    voiding = {
        "actor": {"mbox": "mailto:admin@northwind.example"},
        "verb": {"id": VERBS["voided"]},
        "object": {"objectType": "StatementRef", "id": statement_id(10)},
    }
    added = server.add_statements([template, voiding])

    assert all(s["id"] and s["stored"] > watermark for s in added)
    assert added[0]["stored"] < added[1]["stored"], "stored times strictly increase"
    new = [s for page in follow_more(server, {"since": watermark}) for s in page["statements"]]
    assert {s["id"] for s in new} == {s["id"] for s in added}
    assert xapi_get(server, "/xapi/statements", {"statementId": statement_id(10)}).status_code == 404
    # A more link issued before the additions keeps its frozen upper bound.
    tail = xapi_get(server, stale_more).json()["statements"]
    assert not {s["id"] for s in added} & {s["id"] for s in tail}


# -- faults --------------------------------------------------------------------------------------


def test_status_faults_fire_once_then_disarm(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    server.inject_fault("status", status=500)
    assert xapi_get(server, "/xapi/statements").status_code == 500
    assert xapi_get(server, "/xapi/statements").status_code == 200

    server.inject_fault("status", status=429, retry_after=3, count=2)
    for _ in range(2):
        throttled = xapi_get(server, "/xapi/statements")
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert xapi_get(server, "/xapi/statements").status_code == 200

    server.inject_fault("status", path_prefix="/scim/v2", status=403)
    assert xapi_get(server, "/xapi/statements").status_code == 200, "faults only fire under their prefix"
    forbidden = scim_get(server, "/Users")
    assert forbidden.status_code == 403 and forbidden.json()["schemas"] == [
        "urn:ietf:params:scim:api:messages:2.0:Error"
    ]
    assert scim_get(server, "/Users").status_code == 200
    assert server.armed_faults == []


def test_delay_fault_causes_a_read_timeout_once(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    server.inject_fault("delay", seconds=0.6)
    with pytest.raises(requests.exceptions.ReadTimeout):
        xapi_get(server, "/xapi/statements", timeout=0.2)
    assert xapi_get(server, "/xapi/statements", timeout=0.5).status_code == 200


def test_reset_fault_breaks_the_connection_mid_body(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    server.inject_fault("reset", after_bytes=100)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        xapi_get(server, "/xapi/statements")
    assert xapi_get(server, "/xapi/statements").status_code == 200


def test_malformed_json_fault(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    server.inject_fault("malformed_json")
    broken = xapi_get(server, "/xapi/statements")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    xapi_get(server, "/xapi/statements").json()


def test_repeat_page_fault_serves_the_previous_page_again(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    first = xapi_get(server, "/xapi/statements", {"limit": 5})
    server.inject_fault("repeat_page")
    repeated = xapi_get(server, first.json()["more"])
    assert repeated.content == first.content
    second = xapi_get(server, first.json()["more"]).json()
    assert {s["id"] for s in second["statements"]}.isdisjoint({s["id"] for s in first.json()["statements"]})


def test_more_loop_fault_points_more_back_at_the_request(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    first = xapi_get(server, "/xapi/statements", {"limit": 5}).json()
    server.inject_fault("more_loop")
    looped = xapi_get(server, first["more"]).json()
    assert looped["more"] == first["more"]
    assert xapi_get(server, first["more"]).json()["more"] != first["more"]


def test_requests_are_recorded(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    xapi_get(server, "/xapi/statements", {"limit": 2})
    method, path, headers = server.requests[-1]
    assert (method, path) == ("GET", "/xapi/statements?limit=2")
    assert headers["X-Experience-API-Version"] == "1.0.3" and headers["Authorization"] == "Basic"
    with pytest.raises(ValueError):
        server.inject_fault("teapot")


# -- SCIM ----------------------------------------------------------------------------------------


def test_scim_paging_returns_every_user_once_sorted_by_id(
    lms_server: LmsSampleServer, lms_data_dir: Path
) -> None:
    users: list[dict[str, Any]] = []
    start_index, total = 1, None
    while total is None or start_index <= total:
        response = scim_get(lms_server, "/Users", {"startIndex": start_index, "count": 7})
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/scim+json")
        page = response.json()
        assert page["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
        assert page["startIndex"] == start_index and page["itemsPerPage"] == len(page["Resources"]) <= 7
        total = page["totalResults"]
        users += page["Resources"]
        start_index += page["itemsPerPage"]
    expected_ids = sorted(user["id"] for user in iter_jsonl(lms_data_dir / "lms" / "users.jsonl"))
    assert [user["id"] for user in users] == expected_ids
    assert all(user["meta"]["location"].endswith(f"/scim/v2/Users/{user['id']}") for user in users)


def test_scim_count_is_capped(lms_server_factory: Any) -> None:
    server = lms_server_factory(scim_max_count=10)
    assert scim_get(server, "/Users").json()["itemsPerPage"] == 10
    assert scim_get(server, "/Users", {"count": 50}).json()["itemsPerPage"] == 10
    assert scim_get(server, "/Users", {"count": 0}).json() | {"Resources": None} == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 25,
        "itemsPerPage": 0,
        "startIndex": 1,
        "Resources": None,
    }


def test_scim_last_modified_filter(lms_server: LmsSampleServer) -> None:
    tenth = scim_get(lms_server, "/Users/u0010").json()["meta"]["lastModified"]

    def ids(filter_text: str) -> list[str]:
        response = scim_get(lms_server, "/Users", {"filter": filter_text})
        assert response.status_code == 200, response.text
        return [user["id"] for user in response.json()["Resources"]]

    assert ids(f'meta.lastModified gt "{tenth}"') == [f"u{n:04d}" for n in range(11, 26)]
    assert ids(f'meta.lastModified ge "{tenth}"') == [f"u{n:04d}" for n in range(10, 26)]
    assert ids(f'META.LASTMODIFIED GT "{tenth}"') == [f"u{n:04d}" for n in range(11, 26)]
    for bad in ('userName eq "ada"', 'meta.lastModified gt "2024-01-01T00:00:00"', "meta.lastModified gt"):
        response = scim_get(lms_server, "/Users", {"filter": bad})
        assert response.status_code == 400 and response.json()["scimType"] == "invalidFilter", bad


def test_scim_auth_single_user_and_service_provider_config(lms_server: LmsSampleServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic bHJzOmxycy1zZWNyZXQ="}):
        response = scim_get(lms_server, "/Users", headers=headers)
        assert response.status_code == 401
        assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert scim_get(lms_server, "/Users/u0001").json()["userName"] == user_email(1)
    assert scim_get(lms_server, "/Users/nobody").status_code == 404
    config = scim_get(lms_server, "/ServiceProviderConfig").json()
    assert config["filter"]["supported"] is True and config["filter"]["maxResults"] == 200


def test_updated_users_are_found_by_last_modified(lms_server_factory: Any) -> None:
    server = lms_server_factory()
    before = max(user["meta"]["lastModified"] for user in scim_get(server, "/Users").json()["Resources"])
    original = scim_get(server, "/Users/u0003").json()
    server.add_or_update_users(
        [{**original, "active": False}, {"id": "u9999", "userName": "new@northwind.example"}]
    )
    changed = scim_get(server, "/Users", {"filter": f'meta.lastModified gt "{before}"'}).json()["Resources"]
    assert [user["id"] for user in changed] == ["u0003", "u9999"]
    assert changed[0]["active"] is False and changed[0]["meta"]["created"] == original["meta"]["created"]


# -- SFTP through Airflow's provider -------------------------------------------------------------


@requires_sshd
def test_sftp_hook_lists_and_downloads_from_sshd_with_pinned_host_key(
    sftp_server: SftpSampleServer,
    hris_sftp_connection: dict[str, Any],
    sftp_sample_files: dict[str, bytes],
    tmp_path: Path,
) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    assert sftp_server.backend == "sshd"
    hook = SFTPHook(ssh_conn_id="hris_sftp")
    assert hook.no_host_key_check is False
    assert hook.host_key is not None and hook.host_key.get_name() == "ssh-ed25519"

    remote_dir = hris_sftp_connection["extra"]["remote_dir"]
    assert hook.list_directory(remote_dir) == hris_listing(sftp_sample_files)
    for name in hris_listing(sftp_sample_files):
        hook.retrieve_file(f"{remote_dir}/{name}", str(tmp_path / name))
        assert (tmp_path / name).read_bytes() == sftp_sample_files[f"{remote_dir}/{name}"]


def test_sftp_hook_refuses_a_server_whose_host_key_does_not_match(
    sftp_server: SftpSampleServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    generate_ed25519_key(tmp_path / "impostor", "impostor")
    impostor_key = " ".join((tmp_path / "impostor.pub").read_text().split()[:2])
    connection = sftp_server.airflow_connection()
    connection["extra"]["host_key"] = impostor_key
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))

    # conn_retry_attempts=1: the hook otherwise retries a bad host key 3 times, 3-5 s apart.
    with pytest.raises(paramiko.BadHostKeyException):
        SFTPHook(ssh_conn_id="hris_sftp", conn_retry_attempts=1).list_directory("/outbound/hris")

    del connection["extra"]["host_key"]
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts to fall back on
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        SFTPHook(ssh_conn_id="hris_sftp", conn_retry_attempts=1).list_directory("/outbound/hris")


def test_sftp_hook_against_the_asyncssh_backend(
    sftp_server_factory: Any,
    sftp_sample_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    server = sftp_server_factory(sftp_sample_files, backend="asyncssh")
    for name, value in server.airflow_connection_env().items():
        monkeypatch.setenv(name, value)
    hook = SFTPHook(ssh_conn_id="hris_sftp")
    assert hook.list_directory("/outbound/hris") == hris_listing(sftp_sample_files)
    hook.retrieve_file("/outbound/hris/employees_20240131.csv", str(tmp_path / "employees.csv"))
    assert (tmp_path / "employees.csv").read_bytes() == sftp_sample_files[
        "/outbound/hris/employees_20240131.csv"
    ]
    assert hook.list_directory("/") == ["outbound"], "the root is chrooted"


def test_deferrable_sftp_hook_reads_the_same_connection(
    sftp_server: SftpSampleServer, hris_sftp_connection: dict[str, Any], sftp_sample_files: dict[str, bytes]
) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHookAsync

    names = asyncio.run(SFTPHookAsync(sftp_conn_id="hris_sftp").list_directory("/outbound/hris"))
    # The asyncssh-based hook passes '.' and '..' through; the paramiko hook drops them.
    assert sorted(set(names) - {".", ".."}) == hris_listing(sftp_sample_files)


@pytest.mark.parametrize("backend", [pytest.param("sshd", marks=requires_sshd), "asyncssh"])
def test_sftp_fault_helpers(sftp_server_factory: Any, backend: str) -> None:
    server = sftp_server_factory(backend=backend)
    client, sftp = open_sftp(server)
    assert server.drop_connections() >= 1
    with pytest.raises((OSError, EOFError, paramiko.SSHException)):
        sftp.listdir("/outbound/hris")
    client.close()

    port = server.port
    server.stop()
    with pytest.raises((paramiko.ssh_exception.NoValidConnectionsError, OSError)):
        open_sftp(server, timeout=1)
    server.start()
    assert server.port == port
    client, sftp = open_sftp(server)

    server.pause()
    with pytest.raises(paramiko.SSHException):
        open_sftp(server, timeout=0.5)
    assert sftp.listdir("/outbound"), "sessions opened before the pause carry on"
    server.resume()
    client.close()
    client, sftp = open_sftp(server)
    assert sftp.listdir("/outbound") == ["hris"]
    client.close()


def test_the_sample_hris_files_pass_the_gate_and_load(
    hris_sftp_connection: dict[str, Any], warehouse_dsn: str, tmp_path: Path
) -> None:
    from turnover_signals.config import load_config
    from turnover_signals.hris.history import build_employee_history
    from turnover_signals.hris.ingest import ingest_file, list_pending_files

    config = load_config(
        {
            "hris": {"landing_dir": str(tmp_path / "landing")},
            "quality": {"data_docs_dir": str(tmp_path / "docs")},
        },
        use_variable=False,
    )
    results = [
        ingest_file(remote, config, dsn=warehouse_dsn) for remote in list_pending_files(config, warehouse_dsn)
    ]
    assert sorted((result["feed"], result["status"], result["rows_loaded"]) for result in results) == [
        ("compensation", "loaded", 6),
        ("employees", "loaded", 6),
    ]
    history = build_employee_history(config, warehouse_dsn)
    assert (history["employee_history_rows"], history["compensation_events"]) == (6, 6)


@requires_sshd
def test_sshd_mirror_strategy_serves_new_files_after_sync(
    sftp_server_factory: Any, make_sftp_root: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sftp_module, "_private_mount_namespace_available", lambda: False)
    root = make_sftp_root()
    server = sftp_server_factory(root_dir=root, backend="sshd")
    assert server.chroot_strategy == "mirror"
    (root / "outbound" / "hris" / "late.csv").write_text("employee_id\n")
    client, sftp = open_sftp(server)
    assert "late.csv" not in sftp.listdir("/outbound/hris")
    server.sync()
    assert "late.csv" in sftp.listdir("/outbound/hris")
    client.close()


# -- command lines -------------------------------------------------------------------------------


def run_cli(module: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(PLUGINS_DIR), str(PLUGINS_DIR.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def test_command_lines_print_connection_details_and_stop_on_sigterm(
    lms_data_dir: Path, make_sftp_root: Any, tmp_path: Path
) -> None:
    lms, lms_info = run_cli("turnover_demo.sample_servers.lms_server", "--data", str(lms_data_dir))
    sftp, sftp_info = run_cli(
        "turnover_demo.sample_servers.sftp_server",
        "--root",
        str(make_sftp_root()),
        "--state-dir",
        str(tmp_path / "state"),
    )
    try:
        assert requests.get(lms_info["base_url"] + "/xapi/about", timeout=5).status_code == 200
        assert lms_info["connections"]["lms_api"]["extra"] == {"base_path": "/xapi"}
        assert lms_info["connections"]["lms_directory"]["password"] == "scim-token"
        assert sftp_info["connection"]["conn_type"] == "sftp"
        assert sftp_info["connection"]["extra"]["host_key"].startswith("ssh-ed25519 ")
        sftp_module.wait_for_ssh_banner(sftp_info["host"], sftp_info["port"], timeout=5)
    finally:
        for process in (lms, sftp):
            process.send_signal(signal.SIGTERM)
    assert lms.wait(timeout=10) == 0
    assert sftp.wait(timeout=10) == 0
