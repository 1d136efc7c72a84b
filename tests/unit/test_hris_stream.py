"""ByteStream and header parsing for streamed HRIS deliveries (no server needed)."""

from __future__ import annotations

import hashlib

import pytest

from turnover_signals.errors import BadInputError
from turnover_signals.load.csv_stage import ByteStream, header_end, header_from_bytes


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


def test_the_header_record_ends_at_the_first_line_end_outside_quotes():
    assert header_end(b"a,b\r\n1,2\r\n") == 5
    assert header_end(b'a,"x\ny",b\n1,2\n') == 10
    assert header_end(b'a,"say ""hi""\n there",b\nrest') == len(b'a,"say ""hi""\n there",b\n')
    assert header_end(b'a,"open\n') is None
    assert header_end(b"no line end") is None


def test_first_record_hands_back_only_the_header_and_keeps_every_byte():
    data = b"employee_id,name\r\n" + b"E1,x\r\n" * 50_000
    stream = ByteStream([data[i : i + 4096] for i in range(0, len(data), 4096)])
    head, at_eof = stream.first_record("HRIS file f")
    assert (head, at_eof) == (b"employee_id,name\r\n", False)
    assert b"".join(stream) == data


def test_a_50_mb_line_without_a_line_end_is_bad_input_naming_line_1_not_a_csv_error():
    line = b"employee_id," + b"x" * (50 * 1024 * 1024)  # one 50 MB line, no newline anywhere
    stream = ByteStream(line[i : i + 1024 * 1024] for i in range(0, len(line), 1024 * 1024))
    with pytest.raises(BadInputError) as bad:
        stream.first_record("HRIS file employees_20260105.csv")
    message = str(bad.value)
    assert message.startswith("HRIS file employees_20260105.csv: line 1 (the header) has no line end")
    assert "Next step" in message and "runbook-hris-quarantined-file" in message
    stream.drain()  # the rest is still hashed, for the manifest row
    assert stream.size_bytes == len(line)


def test_a_header_field_beyond_the_csv_field_limit_is_bad_input_naming_line_1():
    huge = b"employee_id," + b"y" * 200_000 + b"\n"  # above the csv module's 131072-character limit
    with pytest.raises(BadInputError, match=r"line 1 \(the header\) cannot be read as CSV"):
        header_from_bytes(huge + b"E1,z\n", "utf-8", "HRIS file f")


def test_invalid_utf8_in_a_data_row_is_not_blamed_on_the_header():
    header = b"employee_id,first_name,last_name\r\n"
    data = header + b"E1,Ann,Lee\r\n" + "E2,Jos\u00e9,Ruiz\r\n".encode("cp1252")
    # the header alone is decoded; the data row's bad byte is COPY's to report, with its line
    assert header_from_bytes(data, "utf-8", "f") == ["employee_id", "first_name", "last_name"]


def test_invalid_utf8_in_the_header_says_header_and_line_1():
    data = "employee_id,Pr\u00e9nom\r\nE1,x\r\n".encode("cp1252")
    with pytest.raises(BadInputError, match=r"line 1 \(the header\) is not valid utf-8 \(.* at byte 14 of "):
        header_from_bytes(data, "utf-8", "f")


def test_a_long_first_line_full_of_quotes_is_scanned_once_not_over_and_over():
    import time

    line = b'employee_id,"' + b'""' * (9 * 1024 * 1024)  # 18 MiB of escaped quotes, never a line end
    stream = ByteStream(line[i : i + 1024 * 1024] for i in range(0, len(line), 1024 * 1024))
    started = time.monotonic()
    with pytest.raises(BadInputError, match="no line end"):
        stream.first_record("HRIS file f")
    assert time.monotonic() - started < 30
