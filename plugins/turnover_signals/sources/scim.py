"""Reading users from a SCIM 2.0 directory (RFC 7643/7644; connection `lms_directory`).

`ScimClient.iter_users(last_modified_after, page_size)` pages ``GET {base_url}/Users`` with
`startIndex` (1-based) and `count`, sending ``Accept: application/scim+json, application/json``
and the bearer token. When `last_modified_after` is given and the directory says
``filter.supported`` in ``GET {base_url}/ServiceProviderConfig``, the pull is incremental
(``filter=meta.lastModified gt "<ISO UTC>"``); otherwise it is a full pull. The listing's `mode`
says which ("incremental" or "full") so the caller can decide what a missing user means. Auth,
retries and the error policy are those of `HttpSourceClient` (see `http_base`).

Interoperability tolerances:

- Paging ends when a page has no Resources (or omits the attribute) or when
  ``startIndex + itemsReceived > totalResults``. The next startIndex advances by the number of
  Resources actually received, so a server that caps `count` below what was asked is fine.
  `totalResults` may be missing (then paging runs to the first empty page).
- A server that ignores startIndex (a page starting with the same user as an earlier page), or
  `max_stalled_pages` consecutive pages of users already received, raises `PaginationLoopError`.
- `totalResults` changing mid-pull (users created or deleted meanwhile) is logged as a WARNING
  and paging continues with the new total; users that shifted across a page boundary may then
  be repeated (skipped here: each id is yielded once) or missed. `total_results_changed` tells
  the caller not to infer deletions from such a full pull.
- A missing ServiceProviderConfig (404) counts as "filtering not supported".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from turnover_signals.errors import SourceRefusedError
from turnover_signals.sources.http_base import (
    RUNBOOK_PAGINATION,
    RUNBOOK_REFUSED,
    HttpSourceClient,
    JsonResponse,
    PaginationLoopError,
    display_url,
    to_utc_iso,
    with_query,
)

log = logging.getLogger(__name__)

SCIM_ACCEPT = "application/scim+json, application/json"
DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_STALLED_PAGES = 3
PullMode = Literal["incremental", "full"]


def last_modified_filter(last_modified_after: datetime) -> str:
    """The SCIM filter for users modified strictly after an aware datetime."""
    return f'meta.lastModified gt "{to_utc_iso(last_modified_after)}"'


@dataclass(frozen=True)
class ScimUserPage:
    """One ListResponse as received."""

    page_number: int
    request_url: str
    start_index: int  # as requested
    total_results: int | None
    resources: list[dict[str, Any]]
    duplicate_ids: frozenset[str]  # ids already received on an earlier page of this pull
    raw_body: bytes = field(repr=False)

    @property
    def raw_body_bytes(self) -> int:
        return len(self.raw_body)


def _optional_int(document: dict[str, Any], name: str) -> int | None:
    value = document.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class ScimUserPages(Iterator[ScimUserPage]):
    """The pages of one pull of ``/Users``, with running totals."""

    def __init__(self, client: ScimClient, mode: PullMode, filter_text: str | None, page_size: int):
        self.client = client
        self.mode: PullMode = mode
        self.filter = filter_text
        self.page_size = page_size
        self.pages = 0
        self.users = 0
        self.duplicates = 0
        self.total_results: int | None = None
        self.total_results_changed = False
        self.complete = False
        self._pages = self._walk()

    def __iter__(self) -> ScimUserPages:
        return self

    def __next__(self) -> ScimUserPage:
        return next(self._pages)

    def _walk(self) -> Iterator[ScimUserPage]:
        client = self.client
        users_url = client.users_url
        start_index = 1
        seen_ids: set[str] = set()
        first_ids: dict[str, int] = {}
        stalled = 0
        warned_start_index = False
        while True:
            params: dict[str, Any] = {"startIndex": start_index, "count": self.page_size}
            if self.filter:
                params["filter"] = self.filter
            response = client.get_json(users_url, "Users page", params)
            document, resources = self._list_response(response)
            total = _optional_int(document, "totalResults")
            self._note_total(total)
            answered_start = _optional_int(document, "startIndex")
            if answered_start is not None and answered_start != start_index and not warned_start_index:
                warned_start_index = True
                log.warning(
                    "SCIM directory answered startIndex=%d for startIndex=%d", answered_start, start_index
                )
            ids = [r["id"] for r in resources if isinstance(r, dict) and isinstance(r.get("id"), str)]
            if ids and ids[0] in first_ids:
                raise self._loop_error(
                    start_index,
                    # the user is not named: an LMS user id is personal data (quality.pii_columns)
                    f"the page at startIndex={start_index} starts with the same user as the page at "
                    f"startIndex={first_ids[ids[0]]}: the server ignores startIndex",
                )
            if ids:
                first_ids[ids[0]] = start_index
            duplicates = frozenset(i for i in ids if i in seen_ids)
            seen_ids.update(ids)
            page = ScimUserPage(
                page_number=self.pages + 1,
                request_url=with_query(users_url, params),
                start_index=start_index,
                total_results=total,
                resources=resources,
                duplicate_ids=duplicates,
                raw_body=response.raw_body,
            )
            self.pages += 1
            self.users += len(resources) - len(duplicates)
            self.duplicates += len(duplicates)
            received = len(resources)
            finished = received == 0 or (total is not None and start_index + received > total)
            self.complete = finished
            stalled = stalled + 1 if received and len(duplicates) == received else 0
            yield page
            if finished:
                return
            if stalled >= client.max_stalled_pages:
                raise self._loop_error(
                    start_index, f"{stalled} consecutive pages held only users already received"
                )
            start_index += received

    def _list_response(self, response: JsonResponse) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        document = response.document
        resources = document.get("Resources", []) if isinstance(document, dict) else None
        if resources is None and isinstance(document, dict):
            resources = []
        if not isinstance(document, dict) or not isinstance(resources, list):
            raise SourceRefusedError(
                f"SCIM directory {display_url(response.url)}",
                "the answer is JSON but not a SCIM ListResponse (no Resources list)",
                "check that host and extra base_path of the connection point at the SCIM base URL "
                "(the URL that /Users hangs off)",
                RUNBOOK_REFUSED,
            )
        return document, resources

    def _note_total(self, total: int | None) -> None:
        if total is None:
            return
        if self.total_results is not None and total != self.total_results:
            self.total_results_changed = True
            log.warning(
                "SCIM directory: totalResults changed from %d to %d during the pull (users created or "
                "deleted meanwhile); continuing with the new total. Users may be repeated (skipped) or "
                "missed: do not infer deletions from this pull",
                self.total_results,
                total,
            )
        self.total_results = total

    def _loop_error(self, start_index: int, problem: str) -> PaginationLoopError:
        return PaginationLoopError(
            f"SCIM directory {display_url(self.client.users_url)}",
            f"{problem} (page {self.pages + 1}); stopped instead of looping",
            "nothing was loaded from this pull. Report the paging bug to the LMS vendor; meanwhile a "
            "page size at least as large as the directory avoids paging",
            RUNBOOK_PAGINATION,
        )


class ScimUserListing(Iterator[dict[str, Any]]):
    """Users of one pull, each id once, in the server's order; `pages` holds the totals and mode."""

    def __init__(self, pages: ScimUserPages):
        self.pages = pages
        self._users = (
            resource
            for page in pages
            for resource in page.resources
            if not (isinstance(resource, dict) and resource.get("id") in page.duplicate_ids)
        )

    @property
    def mode(self) -> PullMode:
        return self.pages.mode

    @property
    def filter(self) -> str | None:
        return self.pages.filter

    @property
    def total_results_changed(self) -> bool:
        return self.pages.total_results_changed

    @property
    def complete(self) -> bool:
        return self.pages.complete

    def __iter__(self) -> ScimUserListing:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._users)


class ScimClient(HttpSourceClient):
    """The Users resource of a SCIM 2.0 directory."""

    api_name = "SCIM directory"
    default_conn_id = "lms_directory"
    auth_kind = "bearer"
    default_headers = {"Accept": SCIM_ACCEPT}

    def __init__(
        self, conn_id: str | None = None, *, max_stalled_pages: int = DEFAULT_MAX_STALLED_PAGES, **kwargs: Any
    ):
        super().__init__(conn_id, **kwargs)
        if max_stalled_pages < 1:
            raise ValueError("max_stalled_pages must be at least 1")
        self.max_stalled_pages = max_stalled_pages
        self._filter_supported: bool | None = None

    @property
    def users_url(self) -> str:
        return self.url_for("Users")

    def service_provider_config(self) -> dict[str, Any] | None:
        """``GET {base_url}/ServiceProviderConfig``; None when the directory has none (404)."""
        response = self.get_json(
            self.url_for("ServiceProviderConfig"), "ServiceProviderConfig", missing_ok=True
        )
        return response.document if isinstance(response.document, dict) else None

    def supports_filter(self) -> bool:
        """Whether the directory says ``filter.supported`` (asked once per client)."""
        if self._filter_supported is None:
            config = self.service_provider_config()
            if config is None:
                log.warning("SCIM directory has no ServiceProviderConfig; assuming no filter support")
            filter_config = (config or {}).get("filter")
            self._filter_supported = (
                isinstance(filter_config, dict) and filter_config.get("supported") is True
            )
        return self._filter_supported

    def iter_user_pages(
        self, filter_text: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, mode: PullMode | None = None
    ) -> ScimUserPages:
        """The ListResponse pages of ``/Users`` (optionally filtered), as received."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        return ScimUserPages(self, mode or ("incremental" if filter_text else "full"), filter_text, page_size)

    def iter_users(
        self,
        last_modified_after: datetime | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        use_filter: bool | None = None,
    ) -> ScimUserListing:
        """Users modified after `last_modified_after` (incremental) or all users (full pull).

        `use_filter=None` asks the directory (`supports_filter()`); True/False forces the choice.
        The returned listing's `mode` says which was used. Raises ValueError for a naive datetime;
        the source errors (`SourceUnavailableError`, `SourceRefusedError`, `PaginationLoopError`)
        while iterating (and from the ServiceProviderConfig request here).
        """
        filter_text = None
        if last_modified_after is not None:
            candidate = last_modified_filter(last_modified_after)
            wanted = self.supports_filter() if use_filter is None else use_filter
            if wanted:
                filter_text = candidate
            else:
                log.info("SCIM directory: filtering not used (unsupported or disabled); pulling all users")
        return ScimUserListing(self.iter_user_pages(filter_text, page_size))
