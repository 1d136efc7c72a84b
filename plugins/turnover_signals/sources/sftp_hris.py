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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from turnover_signals.errors import SourceRefusedError, SourceUnavailableError
from turnover_signals.hris.contract import match_file_name

log = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1024 * 1024


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
        control_path = local_dir / (remote.name + self.control_file_suffix)

        def download_once():
            hook = self._hook()
            try:
                hook.retrieve_file(remote.remote_path, str(local_path), prefetch=True)
                received = local_path.stat().st_size
                if received < remote.size_bytes:
                    raise EOFError(f"received {received} of {remote.size_bytes} bytes")
                if remote.control_file:
                    hook.retrieve_file(remote.control_file, str(control_path), prefetch=True)
            except TimeoutError as exc:
                raise OSError(f"timed out: {exc}") from exc
            finally:
                hook.close_conn()

        self._run("download", f"HRIS file {remote.name}", download_once)
        control = None
        if remote.control_file:
            try:
                control = json.loads(control_path.read_text(encoding="utf-8-sig"))
            except (ValueError, UnicodeDecodeError) as exc:
                control = {"unreadable": f"{exc.__class__.__name__}: {exc}"}
            if not isinstance(control, dict):
                control = {"unreadable": "control file is not a JSON object"}
        return local_path, control


def sha256_of_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_size(path: Path | str) -> int:
    return os.path.getsize(path)
