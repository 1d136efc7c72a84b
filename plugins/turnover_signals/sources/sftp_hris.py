"""Listing and downloading HRIS exports from the vendor's SFTP server.

All traffic goes through the Airflow SFTP provider's hook (`hris_sftp` connection), whose
pinned `host_key` is verified. Transient faults (server down, connection dropped mid-file)
are retried with backoff; a host key that does not match is refused at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import posixpath
import queue
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import paramiko
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from turnover_signals.errors import SourceRefusedError, SourceUnavailableError
from turnover_signals.hris.contract import match_file_name

log = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1024 * 1024
STREAM_CHUNK_BYTES = 1024 * 1024  # asyncssh splits each read into parallel requests
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
MIN_READ_TIMEOUT_SECONDS = 60.0  # per 1 MiB chunk: generous for a slow vendor link
CHANNEL_POLL_SECONDS = 0.002
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteHrisFile:
        return cls(**data)


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
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(self.conn_id).extra_dejson

    def remote_dir(self) -> str:
        """The connection's `remote_dir` extra when set, else the configured directory."""
        extra = self._extra()
        unchecked = [
            flag
            for flag in ("no_host_key_check", "allow_host_key_change")
            if str(extra.get(flag, False)).lower() == "true"
        ]
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
        directory = self.remote_dir()

        def list_once():
            hook = self._hook()
            try:
                return hook.list_directory_with_attr(directory)
            finally:
                hook.close_conn()

        entries = self._run("listing", f"SFTP directory {directory}", list_once)
        names = {entry.filename for entry in entries}
        files: list[RemoteHrisFile] = []
        for entry in entries:
            recognised = match_file_name(entry.filename, self.file_patterns)
            if recognised is None:
                continue
            control = entry.filename + self.control_file_suffix
            files.append(
                RemoteHrisFile(
                    name=entry.filename,
                    remote_path=posixpath.join(directory, entry.filename),
                    feed=recognised.feed,
                    file_date=recognised.file_date.isoformat(),
                    size_bytes=int(entry.st_size or 0),
                    remote_mtime=(
                        datetime.fromtimestamp(entry.st_mtime, UTC).isoformat() if entry.st_mtime else None
                    ),
                    is_encrypted=recognised.is_encrypted,
                    control_file=posixpath.join(directory, control) if control in names else None,
                )
            )
        ignored = len(entries) - len(files)
        log.info("SFTP %s: %d feed file(s), %d other entr(ies) ignored", directory, len(files), ignored)
        return sorted(files, key=lambda f: (f.file_date, f.feed, f.name))

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
                hook.close_conn()

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
                hook.close_conn()

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
            return asyncio.run(self._stream_async(remote, consume, timeouts))

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
                channel.close()
            except BaseException as exc:
                # `consume` sees the fault where it reads and unwinds (its transaction rolls back);
                # what it raises is what the retry loop classifies. A kill or a cancellation is
                # re-raised as itself once the consumer has stopped, so it is never retried.
                channel.fail(exc)
                await asyncio.wait([consumer])
                if not isinstance(exc, Exception) or consumer.exception() is None:
                    raise
            return await consumer


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

    async def put(self, chunk: bytes, consumer: asyncio.Future[Any]) -> None:
        while not consumer.done():
            try:
                self._queue.put_nowait(chunk)
                return
            except queue.Full:
                await asyncio.sleep(CHANNEL_POLL_SECONDS)

    def _offer(self, item: Any) -> None:
        # The consumer may have stopped reading: never block the loop on a full queue.
        with suppress(queue.Full):
            self._queue.put_nowait(item)

    def close(self) -> None:
        self._offer(self._END)

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
