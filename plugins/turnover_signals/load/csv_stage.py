"""Streaming a delivered CSV file into a staging table with PostgreSQL's own CSV parser.

The bytes go to `COPY ... FROM STDIN (format csv)` in ~1 MiB chunks on one psycopg
connection as they arrive (straight from the SFTP transfer, hashed on the way), so memory
stays flat whatever the file size and RFC 4180 quoting (commas, quotes, newlines inside
fields, CRLF) is handled by the server. Nothing here publishes: the staging table is
validated first and attached to the raw table only if it passes.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from turnover_signals.errors import BadInputError
from turnover_signals.hris.contract import Feed, MappedHeader

COPY_CHUNK_BYTES = 1024 * 1024
UTF8_BOM = codecs.BOM_UTF8

# Python codec name -> PostgreSQL client encoding for COPY.
POSTGRES_ENCODINGS = {
    "utf-8": "UTF8",
    "utf8": "UTF8",
    "utf-8-sig": "UTF8",
    "cp1252": "WIN1252",
    "windows-1252": "WIN1252",
    "latin-1": "LATIN1",
    "iso-8859-1": "LATIN1",
}


def postgres_encoding(encoding: str) -> str:
    try:
        return POSTGRES_ENCODINGS[encoding.lower()]
    except KeyError:
        raise ValueError(
            f"hris.encoding {encoding!r} is not supported; use one of {sorted(POSTGRES_ENCODINGS)}"
        ) from None


# A header that needs more than this is not an HRIS export.
MAX_HEADER_BYTES = 16 * 1024 * 1024


class ByteStream:
    """The bytes of one delivery, in order, hashed (sha256) and counted as they pass.

    Chunks read to find the header are kept and handed out again first, so the consumer sees
    every byte exactly once. With `tee`, the bytes are also written there (the landed copy).
    """

    def __init__(self, chunks: Iterable[bytes], tee: BinaryIO | None = None):
        self._source = iter(chunks)
        self._digest = hashlib.sha256()
        self._peeked: list[bytes] = []
        self._tee = tee
        self.size_bytes = 0
        self.exhausted = False

    def _pull(self) -> bytes | None:
        chunk = next(self._source, None)
        if chunk is None:
            self.exhausted = True
            return None
        self._digest.update(chunk)
        self.size_bytes += len(chunk)
        if self._tee is not None:
            self._tee.write(chunk)
        return chunk

    def first_record(self, subject: str = "the file") -> tuple[bytes, bool]:
        """The bytes of the first CSV record (the header, with its line end), and whether the file ends there.

        A file with no line end outside quotes within its first `MAX_HEADER_BYTES` (one 50 MB line, say) is
        bad input, never a parser error: it is quarantined like any other bad file.
        """
        position, quoted = 0, False
        while True:
            data = b"".join(self._peeked)
            end, position, quoted = _scan_for_header_end(data, position, quoted)
            if end is not None:
                return data[:end], self.exhausted and end == len(data)
            if self.exhausted:
                return data, True
            if len(data) > MAX_HEADER_BYTES:
                raise BadInputError(
                    subject,
                    f"line 1 (the header) has no line end within its first {MAX_HEADER_BYTES // 2**20} MiB: "
                    "the file is not a CSV export with a header line, or was written without line ends",
                    "ask the HRIS team to re-export the report as CSV (one header line, one line per row) "
                    "and deliver it again; the last good data stays served",
                    "hris-quarantined-file",
                )
            chunk = self._pull()
            if chunk is not None:
                self._peeked.append(chunk)

    def __iter__(self) -> Iterator[bytes]:
        while self._peeked:
            yield self._peeked.pop(0)
        while (chunk := self._pull()) is not None:
            yield chunk

    def drain(self) -> None:
        """Read (and hash) whatever is left, e.g. to record the sha256 of a file that is rejected."""
        self._peeked.clear()
        while self._pull() is not None:
            pass

    @property
    def sha256(self) -> str:
        if not self.exhausted:
            raise RuntimeError("the stream has not been read to the end")
        return self._digest.hexdigest()


def header_end(data: bytes) -> int | None:
    """The offset just past the first line end outside double quotes (the end of the header record), or None.

    Quotes, commas and newlines are ASCII in every supported encoding, and an escaped quote (`""`) closes
    and reopens the field, so tracking quotes byte-wise finds the record's end without decoding.
    """
    return _scan_for_header_end(data, 0, False)[0]


def _scan_for_header_end(data: bytes, position: int, quoted: bool) -> tuple[int | None, int, bool]:
    """`header_end` resumable: scan `data` from `position` (inside quotes when `quoted`); returns the end, or
    None with where to resume once more bytes arrive. Linear in the bytes scanned, whatever the quotes."""
    newline = data.find(b"\n", position)
    while True:
        quote = data.find(b'"', position)
        if quoted:
            if quote < 0:
                return None, len(data), True
            quoted, position = False, quote + 1
            continue
        if 0 <= newline < position:
            newline = data.find(b"\n", position)  # the one found was inside quotes
        if newline >= 0 and (quote < 0 or newline < quote):
            return newline + 1, position, False
        if quote < 0:
            return None, len(data), False
        quoted, position = True, quote + 1


def file_chunks(path: Path, chunk_bytes: int = COPY_CHUNK_BYTES) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


def header_from_bytes(data: bytes, encoding: str, subject: str) -> list[str]:
    """The first CSV record in `data` (a UTF-8 BOM is tolerated).

    Only the header's own bytes are decoded: a bad byte in a data row is reported by COPY with its line.
    """
    end = header_end(data)
    header_bytes = data if end is None else data[:end]
    codec = "utf-8-sig" if postgres_encoding(encoding) == "UTF8" else encoding
    try:
        text = header_bytes.decode(codec)
    except UnicodeDecodeError as exc:
        raise BadInputError(
            subject,
            f"line 1 (the header) is not valid {encoding} ({exc.reason} at byte {exc.start} of the header)",
            "if the vendor exports Windows-1252, set hris.encoding to cp1252 in the turnover_signals "
            "Variable; otherwise ask for a UTF-8 export",
            "hris-quarantined-file",
        ) from exc
    try:
        header = next(csv.reader(io.StringIO(text, newline="")), None)
    except csv.Error as exc:
        raise BadInputError(
            subject,
            f"line 1 (the header) cannot be read as CSV ({exc}): it is not a header line of column names",
            "ask the HRIS team to re-export the report as CSV with one header line of column names and "
            "deliver it again; the last good data stays served",
            "hris-quarantined-file",
        ) from exc
    if not header or not any(name.strip() for name in header):
        raise BadInputError(
            subject,
            "the file is empty (no header row)",
            "ask the HRIS team to re-export the report; an empty delivery is never loaded",
            "hris-quarantined-file",
        )
    return header


class ChecksumMismatchError(BadInputError):
    """The streamed bytes do not hash to what the control file says."""

    def __init__(self, subject: str, actual: str, expected: str):
        self.actual = actual
        self.expected = expected
        super().__init__(
            subject,
            f"sha256 of the delivered file ({actual[:12]}…) differs from the control file "
            f"({expected[:12]}…): the transfer or the export is incomplete",
            "ask the HRIS team to re-deliver the complete file and its control file; the last good "
            "data stays served",
            "hris-quarantined-file",
        )


@dataclass(frozen=True)
class StagedFile:
    schema: str
    table: str
    rows_copied: int

    @property
    def qualified(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))


def staging_table_name(feed: Feed, sha256: str) -> str:
    return f"{feed.raw_table}_{sha256[:16]}"


def _copy_error_line_number(exc: psycopg.Error) -> str | None:
    """The file's line COPY stopped at (physical lines, the header being line 1), from the error's context."""
    match = re.search(r"line (\d+)", getattr(exc.diag, "context", None) or "")
    return match.group(1) if match else None


def _copy_error_line(exc: psycopg.Error) -> str:
    line = _copy_error_line_number(exc)
    return f" (at line {line})" if line else ""


def stage_csv_stream(
    conn: psycopg.Connection,
    stream: ByteStream,
    feed: Feed,
    header: MappedHeader,
    file_date: str,
    encoding: str,
    subject: str,
    *,
    sha256: str | None = None,
    expected_sha256: str | None = None,
) -> StagedFile:
    """Create `staging.<raw_table>_<sha16>` with the file's columns and COPY the stream into it.

    The table carries the partition key and date as constant defaults and a CHECK constraint
    on the key, so that attaching it to the raw table later needs no extra scan. The key is
    `sha256` when the caller knows it already (a decrypted file: the delivery's hash), else the
    control file's `expected_sha256`, checked against the streamed bytes before anything is
    committed (a mismatch raises ChecksumMismatchError and leaves no table), else the streamed
    bytes' own hash, added once they are all read. Committed on return (the validation gate
    reads it over its own connection).
    """
    key = sha256 or expected_sha256
    table = staging_table_name(feed, key) if key else f"{feed.raw_table}_incoming_{uuid.uuid4().hex[:12]}"
    staged = StagedFile("staging", table, 0)
    columns = [sql.SQL("{} text").format(sql.Identifier(name)) for name in header.staging_columns]
    key_column = (
        sql.SQL("source_sha256 text not null default {sha} check (source_sha256 = {sha}), ").format(
            sha=sql.Literal(key)
        )
        if key
        else sql.SQL("")
    )
    create = sql.SQL(
        "create table {table} ({key_column}{date_column} date not null default {file_date}, {columns})"
    ).format(
        table=staged.qualified,
        key_column=key_column,
        date_column=sql.Identifier(feed.date_column_in_raw),
        file_date=sql.Literal(file_date),
        columns=sql.SQL(", ").join(columns),
    )
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in header.staging_columns)
    # FREEZE: the table is new in this transaction, so its rows can be written frozen and the
    # gate's scans do not have to rewrite every page to set hint bits.
    copy = sql.SQL(
        "copy {table} ({columns}) from stdin"
        " with (format csv, header true, freeze true, encoding {encoding}, force_null ({columns}))"
    ).format(table=staged.qualified, columns=column_list, encoding=sql.Literal(postgres_encoding(encoding)))

    with conn.transaction():
        conn.execute(sql.SQL("drop table if exists {}").format(staged.qualified))
        conn.execute(create)
        try:
            with conn.cursor() as cur:
                # A writer thread feeds libpq, so reading the next chunk from the network
                # overlaps with PostgreSQL parsing the previous one.
                with cur.copy(copy, writer=QueuedLibpqWriter(cur)) as copy_stream:
                    chunks = iter(stream)
                    first = next(chunks, b"")
                    # PostgreSQL's CSV reader does not know the BOM; it would glue it to the first name.
                    copy_stream.write(first.removeprefix(UTF8_BOM))
                    for chunk in chunks:
                        copy_stream.write(chunk)
                rows = cur.rowcount
        except (psycopg.errors.BadCopyFileFormat, psycopg.errors.InvalidTextRepresentation) as exc:
            raise BadInputError(
                subject,
                f"the CSV is malformed{_copy_error_line(exc)}: {exc.diag.message_primary} — typically a "
                "truncated transfer or export, or a row with the wrong number of fields",
                "ask the HRIS team to re-deliver the complete file; the last good data stays served",
                "hris-quarantined-file",
            ) from exc
        except (psycopg.errors.CharacterNotInRepertoire, psycopg.errors.UntranslatableCharacter) as exc:
            line = _copy_error_line_number(exc)
            where = f"line {line} (a data row)" if line else "the file"
            raise BadInputError(
                subject,
                f"{where} is not valid {encoding}: {exc.diag.message_primary}",
                "if the vendor exports Windows-1252, set hris.encoding to cp1252 in the turnover_signals "
                "Variable; otherwise ask for a UTF-8 export",
                "hris-quarantined-file",
            ) from exc
        if expected_sha256 and not sha256 and stream.sha256 != expected_sha256:
            raise ChecksumMismatchError(subject, stream.sha256, expected_sha256)
        if not key:
            staged = _key_by_content(conn, staged, feed, stream.sha256)
    return StagedFile(staged.schema, staged.table, rows)


def _key_by_content(conn: psycopg.Connection, staged: StagedFile, feed: Feed, sha256: str) -> StagedFile:
    """Give a table staged without a known key its partition key column, CHECK and final name."""
    sha = sql.Literal(sha256)
    final = StagedFile(staged.schema, staging_table_name(feed, sha256), 0)
    conn.execute(sql.SQL("drop table if exists {}").format(final.qualified))
    # A constant default is stored in the catalog (no rewrite); the CHECK costs one scan.
    conn.execute(
        sql.SQL(
            "alter table {} add column source_sha256 text not null default {sha}, add check (source_sha256 = "
            "{sha})"
        ).format(staged.qualified, sha=sha)
    )
    conn.execute(sql.SQL("alter table {} rename to {}").format(staged.qualified, sql.Identifier(final.table)))
    return final


def drop_staged(conn: psycopg.Connection, staged: StagedFile) -> None:
    with conn.transaction():
        conn.execute(sql.SQL("drop table if exists {}").format(staged.qualified))
