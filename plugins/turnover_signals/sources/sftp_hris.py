"""Listing and downloading HRIS exports from the vendor's SFTP server.

All traffic goes through the Airflow SFTP provider's hook (`hris_sftp` connection), whose
pinned `host_key` is verified. Transient faults (server down, connection dropped mid-file)
are retried with backoff; a host key that does not match is refused at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import paramiko
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from turnover_signals.errors import SourceRefusedError, SourceUnavailableError
from turnover_signals.hris.contract import match_file_name

log = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1024 * 1024
# paramiko answers reads from 32 KiB prefetch blocks and grows its read buffer by concatenation,
# so one large read() is quadratic: read a block at a time and join them into chunks ourselves.
SFTP_BLOCK_BYTES = 32 * 1024
STREAM_CHUNK_BYTES = 1024 * 1024
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


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, paramiko.BadHostKeyException | paramiko.AuthenticationException):
        return False
    if isinstance(exc, SourceRefusedError):
        return False
    return isinstance(exc, OSError | EOFError | paramiko.SSHException | SourceUnavailableError)


def _host_key_refused(conn_id: str, exc: BaseException) -> SourceRefusedError:
    return SourceRefusedError(
        f"SFTP connection '{conn_id}'",
        f"refused: {exc.__class__.__name__}: the server's host key does not match the pinned "
        "`host_key` in the connection (or authentication was rejected)",
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
                action, state.outcome.exception().__class__.__name__, state.attempt_number, self.attempts,
            ),
            reraise=False,
        )

    def _run(self, action: str, subject: str, func):
        try:
            for attempt in self._retrying(action):
                with attempt:
                    try:
                        return func()
                    except (paramiko.BadHostKeyException, paramiko.AuthenticationException) as exc:
                        raise _host_key_refused(self.conn_id, exc) from exc
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise SourceUnavailableError(
                subject,
                f"SFTP {action} failed after {self.attempts} attempts "
                f"({last.__class__.__name__}: {last})",
                "check that the SFTP server is up and reachable from the workers; the task retries "
                "by itself, and clearing it later is safe (nothing was loaded)",
                "sftp-unavailable",
            ) from last

    def remote_dir(self) -> str:
        """The connection's `remote_dir` extra when set, else the configured directory."""
        from airflow.sdk import BaseHook

        extra = BaseHook.get_connection(self.conn_id).extra_dejson
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

        Reads go through the provider hook's paramiko SFTP client (host key verified) with
        prefetch, so every read request is in flight at once while SSH flow control (the channel
        window) keeps what is buffered small. A fault or a transfer that ends short of the listed
        size raises inside `consume`; the whole call is then retried, so `consume` must start
        from scratch each time (e.g. inside its own transaction).
        """

        def stream_once() -> T:
            hook = self._hook()
            try:
                with hook.get_conn().open(remote.remote_path, "rb") as handle:
                    handle.prefetch()
                    return consume(_chunks(handle, remote))
            except TimeoutError as exc:
                raise OSError(f"timed out: {exc}") from exc
            finally:
                hook.close_conn()

        return self._run("download", f"HRIS file {remote.name}", stream_once)


def _chunks(handle: Any, remote: RemoteHrisFile) -> Iterator[bytes]:
    received = 0
    blocks: list[bytes] = []
    buffered = 0
    while block := handle.read(SFTP_BLOCK_BYTES):
        blocks.append(block)
        buffered += len(block)
        if buffered >= STREAM_CHUNK_BYTES:
            received += buffered
            yield b"".join(blocks)
            blocks, buffered = [], 0
    if blocks:
        received += buffered
        yield b"".join(blocks)
    if received < remote.size_bytes:
        raise EOFError(f"received {received} of {remote.size_bytes} bytes")


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
