"""What the LMS clients share: connection settings, auth, retries, backoff and the error policy.

`HttpSourceClient` owns one `requests.Session` and sends every request through one retry loop
(tenacity), so the xAPI and SCIM clients only describe their endpoints and paging:

- Transient faults are retried with exponential backoff and full jitter, up to
  `RetryPolicy.attempts` tries: HTTP 5xx (except 501/505), 408, connect and read timeouts,
  refused or reset connections (also mid-body: `ChunkedEncodingError`) and 2xx bodies that are
  not valid JSON (a truncated transfer). HTTP 429, and 403 answers that look like rate limiting
  (a Retry-After header, `X-RateLimit-Remaining: 0`, or a body that mentions a rate limit), wait
  for Retry-After (delta-seconds or HTTP-date, capped at `max_retry_after_seconds`) when it is
  given, else back off like any other transient fault. 503 with Retry-After honours it too.
  Exhausted retries raise `SourceUnavailableError`.
- Everything else is refused at once, without a retry: 401 and other 403 (credentials), other
  4xx, TLS verification failures, documents of the wrong shape, and documents nested deeper than
  `json.loads` can follow (a RecursionError would otherwise escape as is). They raise
  `SourceRefusedError`. The xAPI client decodes statement pages itself (`get_json(decode=...)`), so that
  one statement cannot refuse its whole page. With OAuth2, a 401 first discards the cached token and
  retries once with a fresh one.

Messages name the endpoint (URL without user info), the problem and the next step; they never
carry a password, token or client secret (server texts are scrubbed of them too).

Settings come from an Airflow connection, read when the first request is sent (never at import
or DAG parse time), or from explicit `base_url` / `auth` arguments (tests, benchmarks). The
connection contract (docs/reference/connections.md):

- base URL = ``schema://host:port`` + extra `base_path` (default empty; schema defaults to
  https, the port to the scheme's default). A host that already starts with ``http://`` or
  ``https://`` is the whole base URL (plus `base_path`); schema and port are then ignored.
- TLS is verified; extra `ca_bundle` (a PEM path) replaces the trust store; extra
  `verify_tls: false` disables verification and logs a WARNING.
- Basic auth from login/password, OAuth2 client credentials from extras `token_url`,
  `client_id`, `client_secret`, `scope` (``auth_kind="basic_or_oauth2"``), or a bearer token
  from the password or extra `token` (``auth_kind="bearer"``).
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, Self
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests
import requests.auth
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from turnover_signals.errors import SourceRefusedError, SourceUnavailableError

log = logging.getLogger(__name__)

AuthKind = Literal["basic_or_oauth2", "bearer"]
DEFAULT_TIMEOUT_SECONDS: tuple[float, float] = (10.0, 60.0)  # (connect, read)
RATE_LIMIT_MARKERS = ("rate limit", "rate-limit", "ratelimit", "rate_limit", "too many requests", "throttl")
# 501 Not Implemented and 505 HTTP Version Not Supported will not change on a retry.
PERMANENT_SERVER_STATUSES = frozenset({501, 505})
MAX_DETAIL_CHARS = 300
MAX_URL_CHARS = 300
MIN_SECRET_CHARS = 4  # shorter "secrets" would scrub ordinary words from messages

RUNBOOK_UNAVAILABLE = "lms-unavailable"
RUNBOOK_AUTH = "lms-auth"
RUNBOOK_REFUSED = "lms-refused"
RUNBOOK_CONNECTION = "lms-connection"
RUNBOOK_PAGINATION = "lms-pagination-loop"


class PaginationLoopError(SourceUnavailableError):
    """A listing stopped advancing: a `more` link or page pointed back at pages already read.

    A subclass of `SourceUnavailableError`: the extraction is abandoned before its watermark
    moves, so a later task retry starts again from the last good watermark.
    """


# -- small pure helpers --------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None if unusable.

    A date in the past means 0. Negative or unparsable values give None (the caller backs off).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # rejects NaN
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # HTTP-dates are always GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def to_utc_iso(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC with 'Z' (microseconds when present); naive ones raise ValueError."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no timezone; pass an aware datetime (e.g. tzinfo=UTC)")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def normalize_base_path(base_path: str | None) -> str:
    """``"xapi/"`` -> ``"/xapi"``; empty stays empty."""
    path = (base_path or "").strip().strip("/")
    return f"/{path}" if path else ""


def resolve_base_url(
    host: str | None, schema: str | None = None, port: int | str | None = None, base_path: str | None = None
) -> str:
    """The base URL of an http connection, per the connection contract (no trailing slash).

    Raises ValueError when there is no host.
    """
    host_text = (host or "").strip()
    if not host_text:
        raise ValueError("the connection has no host")
    path = normalize_base_path(base_path)
    if host_text.lower().startswith(("http://", "https://")):
        return host_text.rstrip("/") + path
    scheme = (schema or "").strip().lower().rstrip(":/") or "https"
    if scheme not in ("http", "https"):
        raise ValueError(f"schema {schema!r} is not http or https")
    host_part = host_text.strip("/")
    if ":" in host_part and not host_part.startswith("["):  # a bare IPv6 address
        host_part = f"[{host_part}]"
    port_part = f":{int(port)}" if port not in (None, "") else ""
    return f"{scheme}://{host_part}{port_part}{path}"


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL (default ports made explicit), for same-origin checks."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def display_url(url: str) -> str:
    """A URL safe for logs and messages: no user info, no fragment, shortened when very long."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    shown = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return shown if len(shown) <= MAX_URL_CHARS else shown[: MAX_URL_CHARS - 3] + "..."


def with_query(url: str, params: Mapping[str, Any] | None) -> str:
    """`url` with `params` appended as a query string (values already strings or numbers)."""
    if not params:
        return url
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode([(key, str(value)) for key, value in params.items()])


def parse_bool(value: Any, default: bool) -> bool:
    """A connection extra as a boolean: accepts true/false, yes/no, on/off, 1/0 (any case)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{value!r} is not a boolean")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def error_detail(response: requests.Response) -> str:
    """A short, one-line description of an error body (JSON `detail`/`error`/`message`, or text)."""
    content = response.content[:4096]
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("detail", "error_description", "message", "error"):
            value = document.get(key)
            if isinstance(value, str) and value.strip():
                text = value
                break
        else:
            text = json.dumps(document)[:MAX_DETAIL_CHARS]
    else:
        text = content.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


def looks_rate_limited(response: requests.Response) -> bool:
    """True for 429, and for 403s that carry a Retry-After, a zero quota header or say so in the body."""
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    if response.headers.get("Retry-After"):
        return True
    for name in ("X-RateLimit-Remaining", "RateLimit-Remaining"):
        if response.headers.get(name, "").strip() == "0":
            return True
    body = response.content[:4096].decode("utf-8", "replace").lower()
    return any(marker in body for marker in RATE_LIMIT_MARKERS)


# -- retry policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts in all (first try included), backoff and Retry-After caps."""

    attempts: int = 5
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.initial_backoff_seconds, self.max_backoff_seconds, self.max_retry_after_seconds) < 0:
            raise ValueError("backoff and wait limits cannot be negative")

    def backoff_seconds(self, failures: int) -> float:
        """Full-jitter exponential backoff after the `failures`-th failed attempt (1-based)."""
        ceiling = min(self.max_backoff_seconds, self.initial_backoff_seconds * 2 ** max(failures - 1, 0))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def retry_after_wait(self, retry_after: float) -> float:
        return min(max(retry_after, 0.0), self.max_retry_after_seconds)


class TransientFailure(Exception):
    """One failed attempt that may succeed when tried again (internal to the retry loop)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# -- auth ----------------------------------------------------------------------------------------


class Transport(Protocol):
    """What an auth strategy may use to fetch a token: the client's session and settings."""

    session: requests.Session

    def send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response: ...


class Auth(Protocol):
    def headers(self, transport: Transport) -> dict[str, str]: ...

    def refresh_after_unauthorized(self) -> bool: ...

    def secrets(self) -> list[str]: ...

    def describe(self) -> str: ...


@dataclass
class BasicAuth:
    """HTTP Basic authentication (RFC 7617)."""

    login: str
    password: str = field(repr=False)

    def headers(self, transport: Transport) -> dict[str, str]:
        encoded = base64.b64encode(f"{self.login}:{self.password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {encoded}"}

    def refresh_after_unauthorized(self) -> bool:
        return False

    def secrets(self) -> list[str]:
        encoded = base64.b64encode(f"{self.login}:{self.password}".encode()).decode("ascii")
        return [self.password, encoded]

    def describe(self) -> str:
        return f"Basic auth as {self.login!r}"


@dataclass
class BearerToken:
    """A static bearer token (RFC 6750)."""

    token: str = field(repr=False)

    def headers(self, transport: Transport) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def refresh_after_unauthorized(self) -> bool:
        return False

    def secrets(self) -> list[str]:
        return [self.token]

    def describe(self) -> str:
        return "a static bearer token"


@dataclass
class OAuth2ClientCredentials:
    """OAuth2 client credentials grant (RFC 6749 4.4); the token is cached until shortly before expiry.

    The client authenticates to the token endpoint with HTTP Basic (`client_auth="basic"`, the
    method every server must support) or in the form body (`client_auth="post"`). A token without
    `expires_in` is kept for `default_lifetime_seconds`. After a 401 the token is discarded and
    fetched again once.
    """

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    client_auth: Literal["basic", "post"] = "basic"
    refresh_margin_seconds: float = 60.0
    default_lifetime_seconds: float = 300.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _token: str | None = field(default=None, init=False, repr=False)
    _expires_at: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    tokens_fetched: int = field(default=0, init=False)

    def headers(self, transport: Transport) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token(transport)}"}

    def access_token(self, transport: Transport) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at:
                self._fetch(transport)
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def refresh_after_unauthorized(self) -> bool:
        self.invalidate()
        return True

    def secrets(self) -> list[str]:
        return [self.client_secret, *([self._token] if self._token else [])]

    def describe(self) -> str:
        return f"OAuth2 client credentials for client {self.client_id!r}"

    def _fetch(self, transport: Transport) -> None:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        kwargs: dict[str, Any] = {"data": data, "headers": {"Accept": "application/json"}}
        if self.client_auth == "post":
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        else:
            kwargs["auth"] = (self.client_id, self.client_secret)
        response = transport.send("POST", self.token_url, "OAuth2 token request", **kwargs)
        subject = f"OAuth2 token endpoint {display_url(self.token_url)}"
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise TransientFailure(
                f"the token endpoint answered HTTP {response.status_code}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            raise SourceRefusedError(
                subject,
                f"HTTP {response.status_code} for client {self.client_id!r}: "
                f"{scrub(error_detail(response), self.secrets())} (not retried)",
                "check the extras token_url, client_id, client_secret and scope of the connection "
                "with the LMS administrator, then clear the task",
                RUNBOOK_AUTH,
            )
        try:
            document = json.loads(response.content)
        except ValueError as exc:
            raise TransientFailure("the token endpoint answered a body that is not JSON") from exc
        token = document.get("access_token") if isinstance(document, dict) else None
        token_type = str(document.get("token_type", "Bearer")) if isinstance(document, dict) else ""
        if not isinstance(token, str) or not token or token_type.lower() != "bearer":
            raise SourceRefusedError(
                subject,
                "the answer carries no bearer access_token",
                "check that token_url is the LMS's OAuth2 token endpoint",
                RUNBOOK_AUTH,
            )
        try:
            lifetime = float(document.get("expires_in", self.default_lifetime_seconds))
        except (TypeError, ValueError):
            lifetime = self.default_lifetime_seconds
        margin = min(self.refresh_margin_seconds, lifetime / 10)
        self._token = token
        self._expires_at = self.clock() + max(lifetime - margin, 0.0)
        self.tokens_fetched += 1
        log.info("OAuth2: fetched an access token for client %r (valid %.0f s)", self.client_id, lifetime)


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpSourceSettings:
    """Where and how to reach one source."""

    base_url: str
    auth: Auth | None = None
    verify: bool | str = True
    source_name: str = "the explicitly configured client"  # "Airflow connection 'lms_api'" when read from one


def _connection_error(conn_id: str, problem: str, next_step: str) -> SourceRefusedError:
    return SourceRefusedError(f"Airflow connection '{conn_id}'", problem, next_step, RUNBOOK_CONNECTION)


def verify_setting(extra: Mapping[str, Any], conn_id: str) -> bool | str:
    """TLS verification from the extras: True, a CA bundle path, or False (logged as a WARNING)."""
    try:
        verify = parse_bool(extra.get("verify_tls"), default=True)
    except ValueError as exc:
        raise _connection_error(
            conn_id, f"extra verify_tls: {exc}", "set verify_tls to true or false"
        ) from exc
    if not verify:
        log.warning(
            "TLS certificate verification is DISABLED for Airflow connection '%s' (extra verify_tls=false); "
            "use extra ca_bundle with the server's CA instead",
            conn_id,
        )
        return False
    ca_bundle = extra.get("ca_bundle")
    return str(ca_bundle) if ca_bundle else True


def settings_from_connection(conn: Any, conn_id: str, auth_kind: AuthKind) -> HttpSourceSettings:
    """Settings from an Airflow Connection (or anything with its attributes), per the contract."""
    extra = dict(getattr(conn, "extra_dejson", None) or {})
    try:
        base_url = resolve_base_url(conn.host, conn.schema, conn.port, extra.get("base_path"))
    except ValueError as exc:
        raise _connection_error(
            conn_id, str(exc), "set the host (and schema, port, extra base_path) of the connection"
        ) from exc
    verify = verify_setting(extra, conn_id)
    auth: Auth
    if auth_kind == "bearer":
        token = conn.password or extra.get("token")
        if not token:
            raise _connection_error(
                conn_id, "no bearer token", "put the token in the password field or in the extra 'token'"
            )
        auth = BearerToken(str(token))
    elif extra.get("token_url"):
        missing = [name for name in ("client_id", "client_secret") if not extra.get(name)]
        if missing:
            raise _connection_error(
                conn_id,
                f"extra token_url is set but {' and '.join(missing)} missing",
                "set the extras client_id and client_secret (or remove token_url to use Basic auth)",
            )
        client_auth = str(extra.get("client_auth", "basic")).lower()
        if client_auth not in ("basic", "post"):
            raise _connection_error(conn_id, f"extra client_auth {client_auth!r}", "use basic or post")
        auth = OAuth2ClientCredentials(
            token_url=urljoin(base_url + "/", str(extra["token_url"])),
            client_id=str(extra["client_id"]),
            client_secret=str(extra["client_secret"]),
            scope=str(extra["scope"]) if extra.get("scope") else None,
            client_auth=client_auth,  # type: ignore[arg-type]
        )
    elif conn.login:
        auth = BasicAuth(str(conn.login), str(conn.password or ""))
    else:
        raise _connection_error(
            conn_id,
            "no credentials: neither a login for Basic auth nor the extra token_url for OAuth2",
            "set login/password, or the extras token_url, client_id, client_secret and scope",
        )
    return HttpSourceSettings(base_url, auth, verify, f"Airflow connection '{conn_id}'")


def read_airflow_connection(conn_id: str) -> Any:
    """The Airflow connection `conn_id`, looked up now (tasks only; never at import)."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and secrets-backend failures
        if exc.__class__.__name__ == "AirflowNotFoundException":
            raise _connection_error(
                conn_id,
                "is not defined",
                "create it (Admin > Connections, or AIRFLOW_CONN_* / a secrets backend)",
            ) from exc
        raise


class _HeaderAuth(requests.auth.AuthBase):
    """Sets the Authorization header as requests auth, so a ~/.netrc entry cannot replace it."""

    def __init__(self, headers: Mapping[str, str]):
        self._headers = dict(headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request


# -- the client ----------------------------------------------------------------------------------


@dataclass
class JsonResponse:
    """A 2xx answer whose body parsed as JSON."""

    url: str
    status: int
    headers: Mapping[str, str]
    document: Any
    raw_body: bytes = field(repr=False)


class HttpSourceClient:
    """A JSON-over-HTTP source: settings, one session, the retry loop and the error policy.

    Construct with `conn_id` (settings read from the Airflow connection at the first request) or
    with an explicit `base_url` and `auth`. `timeout` is seconds or ``(connect, read)``; `sleep`
    is what waits between attempts (tests pass a recorder).
    """

    api_name = "HTTP source"
    default_conn_id: str | None = None
    auth_kind: AuthKind = "basic_or_oauth2"
    default_headers: Mapping[str, str] = {"Accept": "application/json"}

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        base_url: str | None = None,
        auth: Auth | None = None,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if conn_id is not None and base_url is not None:
            raise ValueError("give either conn_id or base_url, not both")
        if base_url is None:
            conn_id = conn_id or self.default_conn_id
            if conn_id is None:
                raise ValueError("give conn_id or base_url")
            if auth is not None or verify is not True:
                raise ValueError("auth and verify go with base_url; a connection brings its own")
        self.conn_id = conn_id
        self._settings = (
            HttpSourceSettings(base_url.rstrip("/"), auth, verify) if base_url is not None else None
        )
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self._sleep = sleep
        self.requests_sent = 0
        self.retries = 0

    @classmethod
    def from_connection(cls, conn_id: str | None = None, **kwargs: Any) -> Self:
        """A client for the Airflow connection `conn_id` (default: the client's contract name)."""
        return cls(conn_id or cls.default_conn_id, **kwargs)

    # -- settings --------------------------------------------------------------------------

    @property
    def settings(self) -> HttpSourceSettings:
        if self._settings is None:
            assert self.conn_id is not None
            conn = read_airflow_connection(self.conn_id)
            self._settings = settings_from_connection(conn, self.conn_id, self.auth_kind)
        return self._settings

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def url_for(self, path: str) -> str:
        """`path` under the base URL (``"statements"`` -> ``{base_url}/statements``)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def _secrets(self) -> list[str]:
        auth = self._settings.auth if self._settings else None
        return auth.secrets() if auth else []

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------

    def send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        """One HTTP exchange; transport faults become `TransientFailure`, TLS failures a refusal."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("verify", self.settings.verify)
        self.requests_sent += 1
        try:
            return self.session.request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise SourceRefusedError(
                f"{self.api_name} {display_url(url)}",
                f"{what}: TLS verification failed ({exc.__class__.__name__}); not retried",
                "check the server certificate; for a private CA set the connection extra ca_bundle "
                "to its PEM file",
                RUNBOOK_CONNECTION,
            ) from None
        except requests.exceptions.Timeout as exc:
            kind = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "read"
            raise TransientFailure(f"{kind} timeout after {self._timeout_for(kind)} s") from exc
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise TransientFailure(f"connection failed or was reset ({exc.__class__.__name__})") from exc

    def _timeout_for(self, kind: str) -> float:
        if isinstance(self.timeout, tuple):
            return self.timeout[0 if kind == "connect" else 1]
        return self.timeout

    def get_json(
        self,
        url: str,
        what: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        missing_ok: bool = False,
        decode: Callable[[bytes], Any] | None = None,
    ) -> JsonResponse:
        """GET `url` (+ `params`) and parse the JSON body, with retries; raises the source errors.

        With `missing_ok`, a 404 is returned (status 404, document None) instead of raised. `decode` replaces
        `json.loads` for a 2xx body (the xAPI client's bounded statement pages); a ValueError from it counts
        as a truncated transfer (retried), a `SourceRefusedError` is raised as is.
        """
        full_url = with_query(url, params)
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TransientFailure),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(full_url, what, state),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._get_once(full_url, what, headers, missing_ok, decode)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            reason = last.reason if isinstance(last, TransientFailure) else repr(last)
            raise SourceUnavailableError(
                f"{self.api_name} {display_url(full_url)}",
                f"{what} failed {self.retry.attempts} time(s); last: {scrub(reason, self._secrets())}",
                f"check that the server is up and reachable from the workers ({self._source_name()}); "
                "the task retries by itself and a rerun is safe: the watermark only moves after a "
                "complete extraction",
                RUNBOOK_UNAVAILABLE,
            ) from last
        raise AssertionError("unreachable")  # pragma: no cover

    def _source_name(self) -> str:
        return self._settings.source_name if self._settings else f"Airflow connection '{self.conn_id}'"

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, TransientFailure) and failure.retry_after is not None:
            if failure.retry_after > self.retry.max_retry_after_seconds:
                log.warning(
                    "%s asked to wait %.0f s (Retry-After); waiting the configured maximum of %.0f s",
                    self.api_name,
                    failure.retry_after,
                    self.retry.max_retry_after_seconds,
                )
            return self.retry.retry_after_wait(failure.retry_after)
        return self.retry.backoff_seconds(state.attempt_number)

    def _log_retry(self, url: str, what: str, state: RetryCallState) -> None:
        self.retries += 1
        failure = state.outcome.exception() if state.outcome else None
        reason = failure.reason if isinstance(failure, TransientFailure) else repr(failure)
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s %s: %s failed (%s); retrying in %.2f s (attempt %d of %d)",
            self.api_name,
            display_url(url),
            what,
            scrub(reason, self._secrets()),
            wait,
            state.attempt_number + 1,
            self.retry.attempts,
        )

    def _get_once(
        self,
        url: str,
        what: str,
        extra_headers: Mapping[str, str] | None,
        missing_ok: bool = False,
        decode: Callable[[bytes], Any] | None = None,
    ) -> JsonResponse:
        settings = self.settings
        refreshed = False
        while True:
            headers = {**self.default_headers, **(extra_headers or {})}
            auth_headers = settings.auth.headers(self) if settings.auth is not None else {}
            response = self.send("GET", url, what, headers=headers, auth=_HeaderAuth(auth_headers))
            if (
                response.status_code == 401
                and not refreshed
                and settings.auth is not None
                and settings.auth.refresh_after_unauthorized()
            ):
                log.info("%s %s: HTTP 401, fetching a new access token once", self.api_name, display_url(url))
                refreshed = True
                continue
            break
        status = response.status_code
        if 200 <= status < 300:
            try:
                document = (decode or json.loads)(response.content)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise TransientFailure(
                    f"HTTP {status} with a body that is not valid JSON ({len(response.content)} bytes; "
                    "truncated?)"
                ) from exc
            except RecursionError:
                # json.loads recurses once per level: a document nested thousands deep cannot be read, and
                # reading it again will not help.
                raise SourceRefusedError(
                    subject=f"{self.api_name} {display_url(url)}",
                    problem=f"{what}: the answer ({len(response.content)} bytes) nests deeper than the JSON "
                    "parser can follow; not retried",
                    next_step="report the document to the vendor (it is not one a conforming server sends); "
                    "nothing was loaded from it",
                    runbook_section=RUNBOOK_REFUSED,
                ) from None
            return JsonResponse(response.url or url, status, response.headers, document, response.content)
        if status == 404 and missing_ok:
            return JsonResponse(response.url or url, status, response.headers, None, response.content)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if looks_rate_limited(response):
            raise TransientFailure(f"HTTP {status}: rate limited", retry_after)
        if status == 408 or (status >= 500 and status not in PERMANENT_SERVER_STATUSES):
            raise TransientFailure(f"HTTP {status} {response.reason or ''}".rstrip(), retry_after)
        detail = scrub(error_detail(response), self._secrets())
        subject = f"{self.api_name} {display_url(url)}"
        if status in (401, 403):
            auth_text = settings.auth.describe() if settings.auth else "no credentials"
            refreshed_text = " even with a freshly fetched token" if refreshed else ""
            raise SourceRefusedError(
                subject,
                f"HTTP {status}: the server refused {auth_text}{refreshed_text} ({detail}); not retried",
                f"check the credentials of {self._source_name()} and the account's permissions with "
                "the LMS administrator, then clear the task",
                RUNBOOK_AUTH,
            )
        raise SourceRefusedError(
            subject,
            f"HTTP {status} {response.reason or ''}: {detail}; not retried",
            f"check the base URL (host, extra base_path) of {self._source_name()} and the request "
            "parameters; a 4xx does not go away by retrying",
            RUNBOOK_REFUSED,
        )
