"""ByteStream and header parsing for streamed HRIS deliveries (no server needed)."""

from __future__ import annotations

import hashlib

import pytest

from turnover_signals.errors import BadInputError
from turnover_signals.load.csv_stage import ByteStream, header_from_bytes


def test_every_byte_is_seen_once_and_hashed_after_the_header_is_peeked():
    data = b'employee_id,"note, with comma"\r\nE1,"a\r\nb"\r\n' + b"E2,x\r\n" * 1000
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    stream = ByteStream(chunks)
    head, at_eof = stream.first_record()
    assert not at_eof and head.startswith(b"employee_id")
    assert header_from_bytes(head, "utf-8", "f") == ["employee_id", "note, with comma"]
    assert b"".join(stream) == data
    assert stream.sha256 == hashlib.sha256(data).hexdigest() and stream.size_bytes == len(data)


def test_a_header_with_a_quoted_newline_spanning_chunks_is_read_whole():
    data = b'employee_id,"two\nlines"\nE1,x\n'
    stream = ByteStream([data[:15], data[15:]])
    head, _ = stream.first_record()
    assert header_from_bytes(head, "utf-8", "f") == ["employee_id", "two\nlines"]


def test_drain_hashes_the_rest_and_sha_is_refused_before_the_end():
    stream = ByteStream([b"a,b\n", b"1,2\n"])
    with pytest.raises(RuntimeError):
        _ = stream.sha256
    stream.first_record()
    stream.drain()
    assert stream.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_empty_and_undecodable_headers_are_bad_input():
    with pytest.raises(BadInputError, match="empty"):
        header_from_bytes(b"", "utf-8", "f")
    with pytest.raises(BadInputError, match="not valid utf-8"):
        header_from_bytes("Jos\u00e9,x\n".encode("cp1252"), "utf-8", "f")
    assert header_from_bytes(b"\xef\xbb\xbfid,name\r\n", "utf-8", "f") == ["id", "name"]
