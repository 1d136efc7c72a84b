"""Listing and downloading HRIS exports from the vendor's SFTP server.

All traffic goes through the Airflow SFTP provider's hook (`hris_sftp` connection), whose
pinned `host_key` is verified. Transient faults (server down, connection dropped mid-file)
are retried with backoff; a host key that does not match is refused at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import posixpath
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import paramiko
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from turnover_signals.errors import SourceRefusedError, SourceUnavailableError
from turnover_signals.hris.contract import (
    escaped_name,
    is_safe_remote_name,
    match_file_name,
    why_not_a_feed_file,
)

log = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1024 * 1024
STREAM_CHUNK_BYTES = 1024 * 1024  # asyncssh splits each read into parallel requests
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
MIN_READ_TIMEOUT_SECONDS = 60.0  # per 1 MiB chunk: generous for a slow vendor link
CHANNEL_POLL_SECONDS = 0.002
# After a stream, how long asyncssh's own tasks get to finish once cancelled; one that ignores the
# cancellation is then left behind with a WARNING instead of holding the ingest (and its worker slot).
STREAM_CLEANUP_SECONDS = 10.0
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
T = TypeVar("T")


@dataclass(frozen=True)
class RemoteHrisFile:
    """A feed file seen in the remote directory (JSON-serialisable for XCom)."""

    name: str
    remote_path: str
    feed: str
    file_date: str
    size_bytes: int
    remote_mtime: str | None
    is_encrypted: bool
    control_file: str | None
    control_mtime: str | None = None  # the control file's modification time, as listed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteHrisFile:
        return cls(**data)


@dataclass(frozen=True)
class IgnoredEntry:
    """A directory entry that is not taken because of its name, and why."""

    name: str
    reason: str

    def describe(self) -> str:
        """The name escaped (repr-style: no raw control characters) and the reason, for logs and notes."""
        return f"{escaped_name(self.name)} ({self.reason})"


@dataclass(frozen=True)
class DirectoryListing:
    """One listing of the drop directory: the feed files and the entries ignored for their names."""

    directory: str
    files: list[RemoteHrisFile]
    ignored: list[IgnoredEntry]


# Ignored names listed one by one in the WARNING; the rest are counted.
MAX_IGNORED_NAMES_LOGGED = 20


# A host key that does not match, or a key the server rejects, is refused at once (never retried).
REFUSED = (
    paramiko.BadHostKeyException,
    paramiko.AuthenticationException,
    asyncssh.HostKeyNotVerifiable,
    asyncssh.PermissionDenied,
)


def _is_refusal(exc: BaseException) -> bool:
    # paramiko's RejectPolicy (no pinned key, host not in known_hosts) raises a bare SSHException
    return isinstance(exc, REFUSED) or (
        isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc)
    )


def _is_transient(exc: BaseException) -> bool:
    if _is_refusal(exc) or isinstance(exc, SourceRefusedError):
        return False
    return isinstance(
        exc, OSError | EOFError | paramiko.SSHException | asyncssh.Error | SourceUnavailableError
    )


def _host_key_refused(conn_id: str, exc: BaseException) -> SourceRefusedError:
    return SourceRefusedError(
        f"SFTP connection '{conn_id}'",
        f"refused: {exc.__class__.__name__}: the server's host key is not the one pinned in the "
        "connection's `host_key` extra (or none is pinned, or authentication was rejected)",
        "confirm the new host key fingerprint with the HRIS vendor out of band, then update the "
        "connection's `host_key` extra; never switch off `no_host_key_check`",
        "sftp-host-key",
    )


# The host key types the SSH provider can pin (its `host_key` extra, both the paramiko and asyncssh paths).
PINNABLE_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def _malformed_settings(conn_id: str, problem: str) -> SourceRefusedError:
    return SourceRefusedError(
        subject=f"SFTP connection '{conn_id}'",
        problem=f"malformed connection settings: {problem}",
        next_step=(
            "correct the connection's extras (Admin > Connections); `host_key` is one line as the vendor's "
            "`ssh-keyscan` prints it without the host name, e.g. `ssh-ed25519 AAAAC3Nza...`, its fingerprint "
            "confirmed with the HRIS vendor out of band; then clear the task"
        ),
        runbook_section="sftp-host-key",
    )


def _key_type_in_blob(blob: bytes) -> str:
    """The key type an SSH public key blob names first (RFC 4253 §6.6: a uint32 length, then the name)."""
    length = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + length or not 0 < length <= 64:
        raise ValueError("no key type at the start of the key data")
    return blob[4 : 4 + length].decode("ascii")


def check_host_key(conn_id: str, host_key: Any) -> None:
    """Refuse a `host_key` extra that is not one SSH public key the provider reads as written.

    The provider reads a key without its type as ssh-rsa, so the base64 of an Ed25519 key alone fails
    deep inside paramiko with an error that looks transient (and would be retried); here it is refused
    at once, naming the problem. Accepted: `<type> <base64> [comment]` with a type the provider pins, and
    a bare base64 ssh-rsa key (what the provider assumes).
    """
    if not isinstance(host_key, str) or not host_key.strip():
        raise _malformed_settings(conn_id, "the `host_key` extra is empty or not text")
    parts = host_key.split()
    declared, data = (parts[0], parts[1]) if len(parts) >= 2 else (None, parts[0])
    try:
        blob = base64.b64decode(data, validate=True)
        embedded = _key_type_in_blob(blob)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _malformed_settings(
            conn_id,
            "the `host_key` extra is not an SSH public key (`<type> <base64 key data>`): its key data is not "
            "the base64 of a key",
        ) from None
    if declared is None and embedded != "ssh-rsa":
        raise _malformed_settings(
            conn_id,
            f"the `host_key` extra is the base64 of an {embedded} key without its key type, which the SSH "
            f"provider would read as ssh-rsa; write it as `{embedded} <base64>`",
        )
    if declared is not None and declared != embedded:
        raise _malformed_settings(
            conn_id, f"the `host_key` extra says {declared}, but its key data is an {embedded} key"
        )
    if embedded not in PINNABLE_HOST_KEY_TYPES:
        raise _malformed_settings(
            conn_id,
            f"the `host_key` extra is an {embedded} key; the SSH provider pins only "
            + ", ".join(PINNABLE_HOST_KEY_TYPES),
        )
    try:
        # both clients the provider uses must read it: paramiko (listing) and asyncssh (streaming)
        paramiko.PKey.from_type_string(embedded, blob)
        asyncssh.public_key.decode_ssh_public_key(blob)
    except Exception:  # noqa: BLE001 - whatever they raise, the key cannot be pinned
        raise _malformed_settings(conn_id, f"the `host_key` extra is not a valid {embedded} key") from None


def check_connection_extras(conn_id: str, extra: Mapping[str, Any]) -> None:
    """Refuse (`SourceRefusedError`, never retried) extras that cannot work whatever the server does: a
    malformed `host_key` (`check_host_key`), `host_key` together with `no_host_key_check` true (the provider
    refuses that pair), a `conn_timeout` that is not a positive number of seconds."""
    host_key = extra.get("host_key")
    if host_key is not None:
        check_host_key(conn_id, host_key)
        if str(extra.get("no_host_key_check", False)).lower() == "true":
            raise _malformed_settings(
                conn_id, "`host_key` is pinned but `no_host_key_check` is true; remove `no_host_key_check`"
            )
    timeout = extra.get("conn_timeout")
    if timeout not in (None, ""):
        try:
            valid = float(timeout) > 0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise _malformed_settings(
                conn_id, f"`conn_timeout` must be a positive number of seconds, not {str(timeout)[:40]!r}"
            )


class HrisSftpSource:
    """The HRIS drop directory on the vendor's SFTP server."""

    def __init__(
        self,
        conn_id: str,
        remote_dir: str,
        file_patterns: Mapping[str, str],
        control_file_suffix: str = ".ctl",
        attempts: int = 4,
        max_backoff_seconds: float = 30.0,
    ):
        self.conn_id = conn_id
        self.configured_remote_dir = remote_dir
        self.file_patterns = dict(file_patterns)
        self.control_file_suffix = control_file_suffix
        self.attempts = attempts
        self.max_backoff_seconds = max_backoff_seconds

    def _hook(self):
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        self._extra()  # malformed settings are refused before the provider misreads them
        # Our own retry loop classifies faults; the hook's would also retry a bad host key.
        return SFTPHook(ssh_conn_id=self.conn_id, conn_retry_attempts=1)

    def _retrying(self, action: str):
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=1, max=self.max_backoff_seconds),
            retry=retry_if_exception(_is_transient),
            before_sleep=lambda state: log.warning(
                "SFTP %s failed (%s), retrying: attempt %d of %d",
                action,
                state.outcome.exception().__class__.__name__,
                state.attempt_number,
                self.attempts,
            ),
            reraise=False,
        )

    def _run(self, action: str, subject: str, func):
        try:
            for attempt in self._retrying(action):
                with attempt:
                    try:
                        return func()
                    except Exception as exc:
                        if _is_refusal(exc):
                            raise _host_key_refused(self.conn_id, exc) from exc
                        raise
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise SourceUnavailableError(
                subject,
                f"SFTP {action} failed after {self.attempts} attempts ({last.__class__.__name__}: {last})",
                "check that the SFTP server is up and reachable from the workers; the task retries "
                "by itself, and clearing it later is safe (nothing was loaded)",
                "sftp-unavailable",
            ) from last

    def _extra(self) -> dict[str, Any]:
        """The connection's extras; `SourceRefusedError` when malformed (`check_connection_extras`)."""
        from airflow.sdk import BaseHook

        extra = BaseHook.get_connection(self.conn_id).extra_dejson
        check_connection_extras(self.conn_id, extra)
        return extra

    def remote_dir(self) -> str:
        """The connection's `remote_dir` extra when set, else the configured directory."""
        extra = self._extra()
        unchecked = [
            flag
            for flag in ("no_host_key_check", "allow_host_key_change")
            if str(extra.get(flag, False)).lower() == "true"
        ]
        if extra.get("host_key") is None and str(extra.get("known_hosts", "")).strip().lower() == "none":
            unchecked.append("known_hosts none")  # the async hook's stream then verifies no host key at all
        if unchecked:
            # Allowed, because the provider allows it, but never silently: nobody would notice a
            # server in the middle handing out altered HR files.
            log.warning(
                "SFTP connection '%s' switches host key checking off (%s): pin the server's key in the "
                "`host_key` extra instead (docs/runbook/hris.md#runbook-sftp-host-key)",
                self.conn_id,
                ", ".join(unchecked),
            )
        return extra.get("remote_dir") or self.configured_remote_dir

    def list_feed_files(self) -> list[RemoteHrisFile]:
        """Feed files in the remote directory, oldest file date first; others are ignored."""
        return self.list_directory().files

    def list_directory(self, warn_ignored: bool = True) -> DirectoryListing:
        """Feed files (oldest file date first) and the entries ignored for their names.

        Control files and sub-directories are expected and pass silently. Every other entry whose name is
        not a feed file's (unsafe, matching no pattern, an impossible date) is a WARNING naming it escaped,
        unless `warn_ignored` is false: a vendor's misnamed delivery must be noticed, not just skipped.
        """
        directory = self.remote_dir()

        def list_once():
            hook = self._hook()
            try:
                return listdir_attr_any_names(hook.get_conn(), directory)
            finally:
                _disconnect(hook)

        entries = self._run("listing", f"SFTP directory {directory}", list_once)
        by_name = {entry.filename: entry for entry in entries}
        files: list[RemoteHrisFile] = []
        ignored: list[IgnoredEntry] = []
        for entry in entries:
            if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
                continue
            recognised = match_file_name(entry.filename, self.file_patterns)
            if recognised is None:
                if not self._is_control_file_name(entry.filename):
                    reason = why_not_a_feed_file(entry.filename, self.file_patterns) or "not a feed file"
                    ignored.append(IgnoredEntry(entry.filename, reason))
                continue
            control = by_name.get(entry.filename + self.control_file_suffix)
            files.append(
                RemoteHrisFile(
                    name=entry.filename,
                    remote_path=posixpath.join(directory, entry.filename),
                    feed=recognised.feed,
                    file_date=recognised.file_date.isoformat(),
                    size_bytes=int(entry.st_size or 0),
                    remote_mtime=_listed_mtime(entry),
                    is_encrypted=recognised.is_encrypted,
                    control_file=posixpath.join(directory, control.filename) if control else None,
                    control_mtime=_listed_mtime(control) if control else None,
                )
            )
        log.info(
            "SFTP %s: %d feed file(s), %d other entr(ies) skipped",
            directory,
            len(files),
            len(entries) - len(files),
        )
        ignored.sort(key=lambda item: item.name)
        if ignored and warn_ignored:
            shown = "; ".join(item.describe() for item in ignored[:MAX_IGNORED_NAMES_LOGGED])
            more = len(ignored) - MAX_IGNORED_NAMES_LOGGED
            log.warning(
                "SFTP %s: %d entr(ies) ignored for their names, never loaded: %s%s. Next step: if one is a "
                "delivery, ask the HRIS vendor to deliver it again under a name of hris.file_patterns "
                "(docs/runbook/hris.md#runbook-hris-files-not-taken)",
                directory,
                len(ignored),
                shown,
                f"; and {more} more" if more > 0 else "",
            )
        return DirectoryListing(
            directory, sorted(files, key=lambda f: (f.file_date, f.feed, f.name)), ignored
        )

    def _is_control_file_name(self, name: str) -> bool:
        return is_safe_remote_name(name) and name.endswith(self.control_file_suffix)

    def download(self, remote: RemoteHrisFile, local_dir: Path) -> tuple[Path, dict[str, Any] | None]:
        """Download the file (and its control file, when present) into `local_dir`.

        Returns the local path and the parsed control file. A transfer that ends short of the
        listed size is treated as a dropped connection and retried.
        """
        local_path = local_dir / remote.name

        def download_once():
            hook = self._hook()
            try:
                hook.retrieve_file(remote.remote_path, str(local_path), prefetch=True)
                received = local_path.stat().st_size
                if received < remote.size_bytes:
                    raise EOFError(f"received {received} of {remote.size_bytes} bytes")
            except TimeoutError as exc:
                raise OSError(f"timed out: {exc}") from exc
            finally:
                _disconnect(hook)

        self._run("download", f"HRIS file {remote.name}", download_once)
        return local_path, self.read_control(remote)

    def read_control(self, remote: RemoteHrisFile) -> dict[str, Any] | None:
        """The parsed control file of `remote`, None without one, or {"unreadable": why}."""
        if not remote.control_file:
            return None

        def read_once() -> bytes:
            hook = self._hook()
            try:
                with hook.get_conn().open(remote.control_file, "rb") as handle:
                    return handle.read()
            except TimeoutError as exc:
                raise OSError(f"timed out: {exc}") from exc
            finally:
                _disconnect(hook)

        return parse_control(self._run("download", f"control file of {remote.name}", read_once))

    def stream(self, remote: RemoteHrisFile, consume: Callable[[Iterator[bytes]], T]) -> T:
        """Hand the file's bytes, in order and in ~1 MiB chunks, to `consume` as they arrive.

        Reads go through the provider's async hook (`SFTPHookAsync`, asyncssh; host key verified
        against the same `host_key` extra), which keeps many read requests in flight: about twice
        the throughput of the paramiko client on a fast link (benchmarks/README.md, issue 3).
        The event loop runs in this thread and `consume` in a worker thread, fed through a small
        bounded queue, so memory stays flat and a slow consumer slows the reads. A fault or a
        transfer that ends short of the listed size raises inside `consume`; the whole call is
        then retried, so `consume` must start from scratch each time (e.g. in its own transaction).
        """
        timeouts = self._timeouts()

        def stream_once() -> T:
            return run_with_bounded_cleanup(
                self._stream_async(remote, consume, timeouts), STREAM_CLEANUP_SECONDS
            )

        return self._run("download", f"HRIS file {remote.name}", stream_once)

    def _timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts in seconds: the connection's `conn_timeout` extra (default 10 s)."""
        connect = float(self._extra().get("conn_timeout") or DEFAULT_CONNECT_TIMEOUT_SECONDS)
        return connect, max(connect, MIN_READ_TIMEOUT_SECONDS)

    async def _stream_async(
        self, remote: RemoteHrisFile, consume: Callable[[Iterator[bytes]], T], timeouts: tuple[float, float]
    ) -> T:
        connect_timeout, read_timeout = timeouts
        hook = _async_hook_class()(sftp_conn_id=self.conn_id)
        channel = _ChunkChannel()
        async with AsyncExitStack() as stack:
            async with asyncio.timeout(connect_timeout):
                sftp = await stack.enter_async_context(hook.get_managed_conn())
                handle = await stack.enter_async_context(sftp.open(remote.remote_path, "rb"))
            consumer = asyncio.get_running_loop().run_in_executor(None, consume, iter(channel))
            try:
                received = 0
                while not consumer.done():
                    chunk = await asyncio.wait_for(handle.read(STREAM_CHUNK_BYTES), read_timeout)
                    if not chunk:
                        break
                    received += len(chunk)
                    await channel.put(chunk, consumer)
                if received < remote.size_bytes and not consumer.done():
                    raise EOFError(f"received {received} of {remote.size_bytes} bytes")
                await channel.close(consumer)
            except BaseException as exc:
                # `consume` sees the fault where it reads and unwinds (its transaction rolls back);
                # what it raises is what the retry loop classifies. A kill or a cancellation is
                # re-raised as itself once the consumer has stopped, so it is never retried.
                channel.fail(exc)
                await asyncio.wait([consumer])
                if not isinstance(exc, Exception) or consumer.exception() is None:
                    raise
            return await consumer


def _listed_mtime(entry: paramiko.SFTPAttributes) -> str | None:
    return datetime.fromtimestamp(entry.st_mtime, UTC).isoformat() if entry.st_mtime else None


def _disconnect(hook: Any) -> None:
    """Close the hook's SFTP session and its SSH connection.

    The provider's `close_conn` closes only the session: paramiko's transport thread keeps the SSH
    connection (and a session on the vendor's server, which may cap them per user) open until the
    process ends; an ingest opens two per file.
    """
    try:
        hook.close_conn()
    finally:
        if hook.client is not None:
            hook.client.close()
            hook.client = None


def run_with_bounded_cleanup(coroutine: Any, cleanup_seconds: float) -> Any:
    """`asyncio.run(coroutine)`, except that the tasks still pending at its end, and the calls still running
    in the loop's executor, get `cleanup_seconds` in all to finish once cancelled; `asyncio.run` waits for
    them without end, so one library task that ignores its cancellation would hang the task until Airflow's
    timeout."""
    loop = asyncio.new_event_loop()
    # The loop's own executor (asyncssh resolves host names and reads keys in it): shut down below with a
    # bound, where `loop.shutdown_default_executor()` joins its threads without end on Python 3.11 (3.12
    # gave it a timeout), so one blocked call would hang the task just the same.
    executor = ThreadPoolExecutor(thread_name_prefix="sftp-stream")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coroutine)
    finally:
        deadline = time.monotonic() + cleanup_seconds
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=cleanup_seconds))
                if stuck:
                    log.warning(
                        "SFTP stream: %d asyncssh task(s) still running %.0f s after being cancelled (%s); "
                        "left behind; the stream's own outcome stands",
                        len(stuck),
                        cleanup_seconds,
                        ", ".join(sorted({getattr(task.get_coro(), "__qualname__", "?") for task in stuck})),
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            _shut_down_within(executor, max(0.0, deadline - time.monotonic()))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _shut_down_within(executor: ThreadPoolExecutor, seconds: float) -> None:
    """Shut the executor down, waiting at most `seconds` for the calls still running in it."""
    executor.shutdown(wait=False, cancel_futures=True)
    waiting = threading.Thread(target=executor.shutdown, name="sftp-stream-shutdown", daemon=True)
    waiting.start()
    waiting.join(seconds)
    if waiting.is_alive():
        log.warning(
            "SFTP stream: a call in the stream's executor still running at the end of the cleanup bound; "
            "left behind; the stream's own outcome stands",
        )


def _async_hook_class() -> type:
    """The provider's `SFTPHookAsync`, asking asyncssh to prefer AES-GCM.

    asyncssh prefers chacha20-poly1305, which it computes packet by packet in Python; AES-GCM runs
    in OpenSSL (AES-NI) and streams about 1.4 times faster on loopback (benchmarks/README.md, issue
    3). Every algorithm stays on offer, so any server still negotiates one it supports; the SSH
    provider's `ciphers` extra, when set, is the order used instead. The connection is otherwise
    built exactly as the provider builds it (its extras parsing, host key and known_hosts rules).
    """
    from airflow.providers.common.compat.connection import get_async_connection
    from airflow.providers.sftp.hooks.sftp import SFTPHookAsync

    class PreferredCipherSFTPHookAsync(SFTPHookAsync):
        async def _get_conn(self) -> asyncssh.SSHClientConnection:
            conn = await get_async_connection(self.sftp_conn_id)
            self._parse_extras(conn)
            options: dict[str, Any] = {
                "host": self.host or conn.host,
                "port": self.port or conn.port or 22,
                "username": self.username or conn.login,
                "password": self.password or conn.password,
                "encryption_algs": conn.extra_dejson.get("ciphers") or list(PREFERRED_CIPHERS),
            }
            if self.key_file:
                options["client_keys"] = self.key_file
            if self.known_hosts:
                if str(self.known_hosts).lower() == "none":
                    options["known_hosts"] = None
                elif self._should_use_known_hosts():
                    options["known_hosts"] = self.known_hosts
            if self.private_key:
                options["client_keys"] = [asyncssh.import_private_key(self.private_key, self.passphrase)]
            if self.passphrase:
                options["passphrase"] = self.passphrase
            return await asyncssh.connect(**options)

    return PreferredCipherSFTPHookAsync


class _ChunkChannel:
    """Chunks from the event loop to the consuming thread; a few in flight at most."""

    _END = object()

    def __init__(self, max_chunks: int = 8):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_chunks)

    async def put(self, item: Any, consumer: asyncio.Future[Any]) -> None:
        # Never block the loop on a full queue: wait for room while the consumer reads; once it has stopped,
        # nothing more is needed.
        while not consumer.done():
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(CHANNEL_POLL_SECONDS)

    async def close(self, consumer: asyncio.Future[Any]) -> None:
        """The end of the file, after the last chunk. It waits for room as a chunk does: a consumer behind the
        transfer reads until it sees it, and would otherwise wait for it forever (and the task with it)."""
        await self.put(self._END, consumer)

    def fail(self, exc: BaseException) -> None:
        while True:
            try:
                self._queue.put_nowait(exc)
                return
            except queue.Full:
                with suppress(queue.Empty):
                    self._queue.get_nowait()  # the consumer is failing anyway: drop a chunk for the error

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, Exception):
                raise item
            if isinstance(item, BaseException):
                raise OSError("transfer interrupted") from item  # the loop re-raises the kill itself
            yield item


def listdir_attr_any_names(sftp: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    """`SFTPClient.listdir_attr`, except that a name that is not valid UTF-8 does not fail the listing.

    paramiko decodes names strictly, so one file named in Latin-1 (`employ\\xe9s_20260105.csv`) made every
    listing, and so every run, fail with a raw UnicodeDecodeError. Such a name is decoded with surrogate
    escapes instead: it is then ignored as unsafe and reported like any other misnamed entry.
    """
    from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR, SFTPError

    kind, msg = sftp._request(CMD_OPENDIR, sftp._adjust_cwd(path))
    if kind != CMD_HANDLE:
        raise SFTPError("Expected handle")
    handle = msg.get_binary()
    entries: list[paramiko.SFTPAttributes] = []
    try:
        while True:
            try:
                kind, msg = sftp._request(CMD_READDIR, handle)
            except EOFError:  # the server's SSH_FX_EOF: the directory is read
                break
            if kind != CMD_NAME:
                raise SFTPError("Expected name response")
            for _ in range(msg.get_int()):
                filename = msg.get_string().decode("utf-8", "surrogateescape")
                longname = msg.get_string().decode("utf-8", "replace")
                attributes = paramiko.SFTPAttributes._from_msg(msg, filename, longname)
                if filename not in (".", ".."):
                    entries.append(attributes)
    finally:
        sftp._request(CMD_CLOSE, handle)
    return entries


def parse_control(data: bytes) -> dict[str, Any]:
    """The control file as a dict, or {"unreadable": why} when it is not a JSON object."""
    try:
        control = json.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        return {"unreadable": f"{exc.__class__.__name__}: {exc}"}
    if not isinstance(control, dict):
        return {"unreadable": "control file is not a JSON object"}
    return control


def sha256_of_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_size(path: Path | str) -> int:
    return os.path.getsize(path)
