"""A backlog of HRIS files loads in batches (fewer task processes), each file still on its own."""

from __future__ import annotations

import pytest

from turnover_signals.errors import BadInputError
from turnover_signals.hris import ingest


def test_pending_files_are_cut_into_consecutive_batches_in_their_order():
    pending = [{"name": f"employees_{n:02d}.csv"} for n in range(7)]
    batches = ingest.batch_pending_files(pending, 3)
    assert [[f["name"][10:12] for f in batch] for batch in batches] == [
        ["00", "01", "02"],
        ["03", "04", "05"],
        ["06"],
    ]
    assert ingest.batch_pending_files(pending, 0) == [[f] for f in pending]  # at least one file per task
    assert ingest.batch_pending_files([], 10) == []


def test_quarantined_files_do_not_stop_their_batch_and_the_batch_fails_naming_each(monkeypatch):
    loaded = []

    def ingest_file(remote_file, config, run, dsn):
        if remote_file["name"].startswith("bad"):
            raise BadInputError(
                f"HRIS file {remote_file['name']}", "quarantined: 2 of 30 expectations failed", "fix it"
            )
        loaded.append(remote_file["name"])
        return {"file_name": remote_file["name"], "status": "loaded"}

    monkeypatch.setattr(ingest, "ingest_file", ingest_file)
    files = [{"name": "a.csv"}, {"name": "bad1.csv"}, {"name": "b.csv"}, {"name": "bad2.csv"}]
    with pytest.raises(BadInputError) as raised:
        ingest.ingest_files(files, {}, None, None)
    assert loaded == ["a.csv", "b.csv"]
    message = str(raised.value)
    assert "2 file(s) quarantined" in message and "bad1.csv" in message and "bad2.csv" in message
    assert ingest.ingest_files([{"name": "a.csv"}], {}, None, None) == [
        {"file_name": "a.csv", "status": "loaded"}
    ]
