"""Where the files the pipeline writes for later tasks or for people live: one object-storage base.

Data Docs pages, model artifacts and reports, identity review samples and the retention archive are
written through Airflow's `ObjectStoragePath` under `storage.base_url` (`file://` in tests and the
demo; `s3://`, `gs://` or `abfs://` in production, through the matching provider and the Airflow
connection `storage.conn_id`). Each kind has its own folder (`quality.data_docs_dir`,
`model.artifact_dir`, ...): a relative folder lies under the base, an absolute local path or a full
URL is used as given.

Without `storage.base_url` the base is the local data directory (`$TURNOVER_DATA_DIR`, else
`$AIRFLOW_HOME`), as before. That is only right when every task runs on one host: under a distributed
executor (Celery, Kubernetes, ...) the first task that needs storage fails instead of writing the only
copy of a file to one worker's disk.

The warehouse records object URLs without the connection id (`s3://bucket/key`, `file:///dir/page.html`):
readers attach the configured connection, so rotating it does not orphan older rows. Rows written before
object storage hold plain local paths; `stored_path` reads those as `file://` URLs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from turnover_signals.errors import StorageNotSharedError, StorageVerificationError
from turnover_signals.paths import local_data_dir

log = logging.getLogger(__name__)

RUNBOOK_SECTION = "storage"
# Executors that run every task on the scheduler's host: a local data directory is shared by all tasks.
SINGLE_HOST_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor"})
CHUNK_BYTES = 1 << 20
BASE_URL_ENV_VAR = "TURNOVER_STORAGE_BASE_URL"


@dataclass(frozen=True)
class StoredObject:
    """An object written and read back: its URL (as recorded), size and sha256."""

    url: str
    size_bytes: int
    sha256: str


def _storage_settings(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    settings = config.get("storage") or {}
    # the deployment may give the base in the environment (compose, Helm values), the Variable overrides it
    base_url = settings.get("base_url") or os.environ.get(BASE_URL_ENV_VAR) or None
    return base_url, settings.get("conn_id") or None


def configured_executors() -> list[str]:
    """Class names of Airflow's configured executors (`[core] executor` may be a comma list of names,
    module paths or `alias:module.path`)."""
    from airflow.configuration import conf

    raw = conf.get("core", "executor", fallback="") or ""
    names = []
    for entry in raw.split(","):
        entry = entry.strip().rpartition(":")[2].strip()
        if entry:
            names.append(entry.rpartition(".")[2])
    return names


def _in_dag_test() -> bool:
    """Whether this runs inside `dag.test()` / `airflow dags test`, where every task runs in this one
    process."""
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    except ImportError:  # pragma: no cover - the Task SDK ships with Airflow 3
        return False
    return isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), InProcessSupervisorComms)


def require_shared_storage_for_local_base() -> None:
    """Refuse the local data directory as the base when tasks may run on another host."""
    distributed = [name for name in configured_executors() if name not in SINGLE_HOST_EXECUTORS]
    if distributed and not _in_dag_test():
        raise StorageNotSharedError(
            subject="storage.base_url",
            problem=f"not set, and the executor {', '.join(distributed)} runs tasks on other hosts: a file "
            "written to this worker's local data directory would be missing for the next task, the Data "
            "quality page and you",
            next_step="set storage.base_url (and storage.conn_id) in the turnover_signals Variable to a "
            "shared object store, e.g. s3://<bucket>/turnover-signals with an aws connection, then clear the "
            "task",
            runbook_section=RUNBOOK_SECTION,
        )


def _path(url: str, conn_id: str | None = None) -> Any:
    from airflow.sdk import ObjectStoragePath

    if url.startswith(("file:", "local:")):
        conn_id = None  # the local filesystem takes no connection
    return ObjectStoragePath(url, conn_id=conn_id)


def storage_base(config: Mapping[str, Any]) -> Any:
    """The configured base as an `ObjectStoragePath`: `storage.base_url`, else the local data directory."""
    url, conn_id = _storage_settings(config)
    if url:
        return _path(url, conn_id)
    require_shared_storage_for_local_base()
    return _path(local_data_dir().resolve().as_uri())


def location(config: Mapping[str, Any], configured: str | os.PathLike[str]) -> Any:
    """Where a configured folder lives: a full URL as given, an absolute local path as `file://`,
    anything else under the base."""
    text = os.fspath(configured)
    if "://" in text:
        return _path(text, _storage_settings(config)[1])
    if Path(text).is_absolute():
        return _path(Path(text).as_uri())
    return storage_base(config).joinpath(*Path(text).parts)


def object_url(path: Any) -> str:
    """The URL recorded in the warehouse: protocol and path, without the connection id."""
    protocol = path.protocol or "file"
    if protocol in ("file", "local"):
        return Path(path.path).as_uri()
    return f"{protocol}://{path.path}"


def stored_path(config: Mapping[str, Any], recorded: str) -> Any:
    """A recorded location as an `ObjectStoragePath`: an object URL, or a plain local path (rows written
    before object storage)."""
    if "://" in recorded:
        return _path(recorded, _storage_settings(config)[1])
    return _path(Path(recorded).absolute().as_uri())


def write_bytes(target: Any, data: bytes, overwrite: bool = True) -> str:
    """Write one object whole and return its URL. `overwrite=False` refuses an existing object."""
    if not overwrite and target.exists():
        raise FileExistsError(object_url(target))
    target.parent.mkdir(parents=True, exist_ok=True)  # a no-op on object stores without folders
    with target.open("wb") as handle:
        handle.write(data)
    return object_url(target)


def publish_file(local: str | os.PathLike[str], target: Any, overwrite: bool = True) -> str:
    """Copy a local file to `target` (streamed) and return the object's URL."""
    if not overwrite and target.exists():
        raise FileExistsError(object_url(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(local, "rb") as source, target.open("wb") as handle:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
            handle.write(chunk)
    return object_url(target)


def read_bytes(config: Mapping[str, Any], recorded: str) -> bytes:
    """The bytes of a recorded object (URL or legacy local path)."""
    with stored_path(config, recorded).open("rb") as handle:
        return handle.read()


def object_digest(path: Any) -> tuple[int, str]:
    """Size and sha256 of an object, read back in chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def local_digest(local: str | os.PathLike[str]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(local, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def publish_once(local: str | os.PathLike[str], target: Any, what: str) -> str:
    """Write-once publication: copy a local file to `target` unless the object exists; an existing object
    must hold the same bytes (a rerun publishing the same content), else nothing is written and it raises.
    """
    if target.exists():
        size, sha256 = local_digest(local)
        stored_size, stored_sha256 = object_digest(target)
        if (stored_size, stored_sha256) != (size, sha256):
            raise StorageVerificationError(
                subject=f"{what} {object_url(target)}",
                problem=f"the object exists with other bytes (sha256 {stored_sha256[:12]}…, not "
                f"{sha256[:12]}…); it was written once and is not overwritten",
                next_step="find out who changed the object (it should be immutable); restore it from backup "
                "or retrain, which writes a new version",
                runbook_section="turnover_model",
            )
        return object_url(target)
    return publish_file(local, target, overwrite=False)


def publish_verified(local: str | os.PathLike[str], target: Any) -> StoredObject:
    """Copy a local file to `target`, then read the object back: its size and sha256 must equal the file's.

    Called before anything the object preserves is deleted; a mismatch raises and deletes nothing.
    """
    size, sha256 = local_digest(local)
    url = publish_file(local, target)
    stored_size, stored_sha256 = object_digest(target)
    if (stored_size, stored_sha256) != (size, sha256):
        raise StorageVerificationError(
            subject=f"archive object {url}",
            problem=f"read back {stored_size} bytes with sha256 {stored_sha256[:12]}…, but {size} bytes with "
            f"sha256 {sha256[:12]}… were written; nothing was deleted",
            next_step="check the object store (quota, lifecycle rules, a proxy rewriting objects) and clear "
            "the task",
            runbook_section=RUNBOOK_SECTION,
        )
    log.info("archive object %s written and verified (%d bytes, sha256 %s)", url, size, sha256)
    return StoredObject(url, size, sha256)


def _parts(path: Any) -> tuple[str, str, tuple[str, ...]] | None:
    """(protocol, bucket, normalized key segments) of a path; None when it climbs above its root."""
    protocol = path.protocol or "file"
    if protocol in ("file", "local"):
        # symlinks resolved: a link under the base must not lead outside it
        resolved = os.path.realpath(path.path)
        return "file", "", tuple(s for s in resolved.split("/") if s)
    raw = path.path
    bucket, _, key = raw.partition("/")
    segments: list[str] = []
    for segment in key.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                return None
            segments.pop()
        else:
            segments.append(segment)
    return protocol, bucket, tuple(posixpath.normpath(s) for s in segments)


def contained(candidate: Any, roots: Iterable[Any]) -> bool:
    """Whether `candidate` lies under one of `roots` (same store; no `..`, no symlink leading out)."""
    inside = _parts(candidate)
    if inside is None:
        return False
    for root in roots:
        outer = _parts(root)
        if outer is None or outer[:2] != inside[:2]:
            continue
        if len(inside[2]) > len(outer[2]) and inside[2][: len(outer[2])] == outer[2]:
            return True
    return False


def names_a_parent(recorded: str) -> bool:
    """Whether a recorded location climbs with a `..` segment (also percent-encoded): the pipeline never
    writes one, so a location that does was written by someone else."""
    return ".." in re.split(r"[/\\]", unquote(recorded))


def readable_object(config: Mapping[str, Any], recorded: str, folders: Iterable[str]) -> Any | None:
    """The recorded object, if it lies under the base or one of the configured `folders`; else None.

    A plain local path (a row from before object storage) may also lie under the local data directory,
    where those rows were written. A location with a `..` segment is refused whatever it leads to, and a
    symbolic link counts where it leads.
    """
    if names_a_parent(recorded):
        return None
    path = stored_path(config, recorded)
    roots = [storage_base(config), *(location(config, folder) for folder in folders)]
    if "://" not in recorded:
        roots.append(_path(local_data_dir().resolve().as_uri()))
    return path if contained(path, roots) else None


def modified_at(info: Mapping[str, Any]) -> datetime | None:
    """When an object was last written, from a filesystem listing's details (local `mtime`, S3
    `LastModified`, Azure `last_modified`, GCS `updated`); None when the store does not say."""
    for key in ("mtime", "LastModified", "last_modified", "updated"):
        value = info.get(key)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def objects_under(folder: Any) -> Iterator[tuple[Any, str, Mapping[str, Any]]]:
    """Every object under `folder` as (path, path relative to the folder, listing details), in name order.

    Symbolic links are listed as themselves (a link to a folder is not followed); callers check where
    each one leads with `contained`.
    """
    try:
        found = folder.fs.find(folder.path, withdirs=False, detail=True)
    except FileNotFoundError:  # nothing written there yet
        return
    prefix = folder.path.rstrip("/") + "/"
    for name, info in sorted(found.items()):
        if not name.startswith(prefix):
            continue
        relative = name[len(prefix) :]
        yield folder.joinpath(*relative.split("/")), relative, info
