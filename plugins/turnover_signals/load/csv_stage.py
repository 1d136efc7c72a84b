"""Streaming a delivered CSV file into a staging table with PostgreSQL's own CSV parser.

The bytes go to `COPY ... FROM STDIN (format csv)` in 1 MiB chunks on one psycopg
connection, so memory stays flat whatever the file size and RFC 4180 quoting (commas,
quotes, newlines inside fields, CRLF) is handled by the server. Nothing here publishes: the
staging table is validated first and attached to the raw table only if it passes.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

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


def read_header(path: Path, encoding: str, subject: str) -> list[str]:
    """The first CSV record of the file (a UTF-8 BOM is tolerated)."""
    codec = "utf-8-sig" if postgres_encoding(encoding) == "UTF8" else encoding
    try:
        with open(path, encoding=codec, newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise BadInputError(
            subject,
            f"the header is not valid {encoding} ({exc.reason} at byte {exc.start})",
            "if the vendor exports Windows-1252, set hris.encoding to cp1252 in the turnover_signals "
            "Variable; otherwise ask for a UTF-8 export",
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


def _copy_error_line(exc: psycopg.Error) -> str:
    context = getattr(exc.diag, "context", None) or ""
    match = re.search(r"line (\d+)", context)
    return f" (at line {match.group(1)})" if match else ""


def stage_csv_file(
    conn: psycopg.Connection,
    path: Path,
    feed: Feed,
    header: MappedHeader,
    sha256: str,
    file_date: str,
    encoding: str,
    subject: str,
) -> StagedFile:
    """Create `staging.<raw_table>_<sha16>` with the file's columns and COPY the file into it.

    The table carries the partition key and date as constant defaults and a CHECK constraint
    on the key, so that attaching it to the raw table later needs no extra scan. Committed on
    return (the validation gate reads it over its own connection).
    """
    table = staging_table_name(feed, sha256)
    staged = StagedFile("staging", table, 0)
    columns = [
        sql.SQL("{} text").format(sql.Identifier(name)) for name in header.staging_columns
    ]
    create = sql.SQL(
        "create table {table} ("
        " source_sha256 text not null default {sha} check (source_sha256 = {sha}),"
        " {date_column} date not null default {file_date}, {columns})"
    ).format(
        table=staged.qualified,
        sha=sql.Literal(sha256),
        date_column=sql.Identifier(feed.date_column_in_raw),
        file_date=sql.Literal(file_date),
        columns=sql.SQL(", ").join(columns),
    )
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in header.staging_columns)
    copy = sql.SQL(
        "copy {table} ({columns}) from stdin"
        " with (format csv, header true, encoding {encoding}, force_null ({columns}))"
    ).format(table=staged.qualified, columns=column_list, encoding=sql.Literal(postgres_encoding(encoding)))

    with conn.transaction():
        conn.execute(sql.SQL("drop table if exists {}").format(staged.qualified))
        conn.execute(create)
        try:
            with conn.cursor() as cur:
                with cur.copy(copy) as copy_stream, open(path, "rb") as handle:
                    first = handle.read(COPY_CHUNK_BYTES)
                    # PostgreSQL's CSV reader does not know the BOM; it would glue it to the first name.
                    if first.startswith(UTF8_BOM):
                        first = first[len(UTF8_BOM):]
                    chunk = first
                    while chunk:
                        copy_stream.write(chunk)
                        chunk = handle.read(COPY_CHUNK_BYTES)
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
            raise BadInputError(
                subject,
                f"the file is not valid {encoding}{_copy_error_line(exc)}: {exc.diag.message_primary}",
                "if the vendor exports Windows-1252, set hris.encoding to cp1252 in the turnover_signals "
                "Variable; otherwise ask for a UTF-8 export",
                "hris-quarantined-file",
            ) from exc
    return StagedFile(staged.schema, staged.table, rows)


def drop_staged(conn: psycopg.Connection, staged: StagedFile) -> None:
    with conn.transaction():
        conn.execute(sql.SQL("drop table if exists {}").format(staged.qualified))
