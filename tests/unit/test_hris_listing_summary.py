"""What a run says about the files its listing did not take (no server needed)."""

from __future__ import annotations

import json
import logging

from turnover_signals.hris.ingest import FileSurvey, WaitingFile, summarize_ingest
from turnover_signals.sources.sftp_hris import IgnoredEntry


def survey_with_odd_names() -> FileSurvey:
    return FileSurvey(
        pending=[],
        waiting=[WaitingFile("employees_20260106.csv", "still being written: 10 then 20 bytes")],
        ignored=[
            IgnoredEntry("employees_20260105.csv\n", "unsafe name: holds a control or unprintable character"),
            IgnoredEntry("employees_20260105.csv;rm -rf ~", "unsafe name: holds a shell metacharacter"),
        ],
    )


def test_the_run_summary_counts_and_names_what_the_listing_did_not_take(caplog):
    listing = json.loads(json.dumps(survey_with_odd_names().summary()))  # through XCom
    results = [[{"file_name": "employees_20260104.csv", "status": "loaded", "rows_loaded": 5}]]
    with caplog.at_level(logging.INFO, logger="turnover_signals.hris.ingest"):
        summary = summarize_ingest(results, listing)
    assert summary["files"] == 1 and summary["rows_loaded"] == 5
    assert summary["ignored_names"] == 2 and summary["not_taken_yet"] == 1
    assert summary["ignored"][0] == (
        "'employees_20260105.csv\\n' (unsafe name: holds a control or unprintable character)"
    )
    assert all("\n" not in name for name in summary["ignored"])
    [record] = [r for r in caplog.records if "HRIS ingest summary" in r.getMessage()]
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()


def test_a_run_that_took_everything_says_so_at_info():
    summary = summarize_ingest([{"file_name": "a", "status": "loaded", "rows_loaded": 1}], None)
    assert (summary["ignored_names"], summary["not_taken_yet"]) == (0, 0)


def test_the_note_lines_name_each_file_escaped_on_one_line_each():
    lines = survey_with_odd_names().note_lines()
    assert lines[0].startswith("1 HRIS file(s) not taken yet: 'employees_20260106.csv' (still being")
    assert lines[1].startswith("2 entr(ies) of the HRIS drop ignored for their names: ")
    assert all("\n" not in line for line in lines)
