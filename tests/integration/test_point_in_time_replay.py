"""A backfill equals the day-by-day replay of production, on a generated enterprise through the real ingest
paths.

The synthetic generator writes two months of daily HRIS files, a SCIM directory and xAPI statements, a
fifth of them stored days late and some voided. One warehouse replays production over the last two weeks:
each day the files dated that day land on the real sshd (modified a few hours after the end of their
date), a sample LMS serves what its LRS had stored and its directory listed by the day's cut-off, the real
loaders run (HRIS ingest and history, SCIM and xAPI extraction, as tests/integration/enterprise.py runs
them), identities are resolved incrementally and that day alone is built. The other warehouse, like a
first install, loads the finished enterprise at once through the same loaders and backfills the two weeks
in one build. Every feature row must be the same. And an "as known now" restatement must read some of the
dates otherwise, or the window held nothing a cut-off excludes and the comparison would prove little.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Collection
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from unittest import mock

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tests.integration.enterprise import generate, load_hris, load_lms
from turnover_demo.sample_servers.lms_server import LmsSampleServer
from turnover_demo.sample_servers.sftp_server import SftpSampleServer
from turnover_signals.config import load_config
from turnover_signals.features.build import FEATURE_COLUMNS, LMS_COLUMNS, build_features
from turnover_signals.features.dates import as_of_grace, cutoff_of
from turnover_signals.identity.resolve import resolve_identities

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Seed 12 puts two exits, a transfer, a hire and a pay change into the replayed days; a fifth of the
# statements are stored 1-10 days late and one in twenty is voided.
ENTERPRISE = {
    "employees": 120,
    "months": 2,
    "seed": 12,
    "end_date": "2026-10-31",
    "snapshot_every_days": 1,
    "late_rate": 0.2,
    "void_rate": 0.05,
}
REPLAYED = [date(2026, 10, 18) + timedelta(days=n) for n in range(14)]
DELIVERY_HOUR = 3  # the vendor drops a day's files at 03:00 UTC the next day
KNOWN_NOW = datetime(2026, 11, 15, tzinfo=UTC)  # after everything the generator wrote
BOOKKEEPING = ("built_at", "build_id")  # which build wrote a row; everything else is what the row says


@pytest.fixture
def config(tmp_path):
    config = copy.deepcopy(load_config(use_variable=False))
    # ~130 LMS accounts: a few contractors' would trip the match-rate gate sized for an enterprise
    config["identity"]["min_active_lms_match_rate"] = 0
    config["identity"]["review_sample_dir"] = str(tmp_path / "identity_review")
    config["features"]["initial_backfill_month_ends"] = 0
    return config


def cutoff(day: date, config) -> datetime:
    return cutoff_of(day, as_of_grace(config))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def file_date(path: Path) -> date:
    """The date in an HRIS file's name (its control file's too)."""
    return datetime.strptime(path.name.split("_", 1)[1][:8], "%Y%m%d").date()


def deliver(generated_hris: Path, served_hris: Path, days: Collection[date]) -> int:
    """Copy the generated files dated `days` onto the SFTP tree, modified DELIVERY_HOUR after their date
    ended."""
    delivered = 0
    for source in sorted(generated_hris.iterdir()):
        day = file_date(source)
        if day in days:
            shutil.copyfile(source, served_hris / source.name)
            mtime = datetime.combine(day + timedelta(days=1), time(DELIVERY_HOUR), tzinfo=UTC).timestamp()
            os.utime(served_hris / source.name, (mtime, mtime))
            delivered += 1
    return delivered


def directory_at(users: list[dict], moment: datetime) -> list[dict]:
    """The SCIM users as the directory listed them at `moment`.

    The generator writes each account's final state only. An account changed after `moment` (deactivated,
    or its userName released to a newcomer) is listed as it was created: active, with its own userName.
    Neither change touches an identifier matching uses (external id, emails). Listing the final state
    early instead would also move the replay's SCIM watermark past accounts created later, which its
    incremental pulls would then never see.
    """
    listed = []
    for user in users:
        if parse_time(user["meta"]["created"]) > moment:
            continue
        if parse_time(user["meta"]["lastModified"]) > moment:
            user = {
                **user,
                "active": True,
                "userName": user["userName"].split("#released-", 1)[0],
                "meta": {**user["meta"], "lastModified": user["meta"]["created"]},
            }
        listed.append(user)
    return listed


def lms_as_known_at(generated: Path, data_dir: Path, moment: datetime) -> Path:
    """A data dir for the sample LMS: what its LRS had stored and its directory listed at `moment`."""
    (data_dir / "lms").mkdir(parents=True)
    with (
        open(generated / "lms" / "statements.jsonl", encoding="utf-8") as source,
        open(data_dir / "lms" / "statements.jsonl", "w", encoding="utf-8") as target,
    ):
        target.writelines(line for line in source if parse_time(json.loads(line)["stored"]) <= moment)
    with open(generated / "lms" / "users.jsonl", encoding="utf-8") as source:
        users = [json.loads(line) for line in source]
    with open(data_dir / "lms" / "users.jsonl", "w", encoding="utf-8") as target:
        target.writelines(json.dumps(user) + "\n" for user in directory_at(users, moment))
    return data_dir


@contextmanager
def lms_serving(data_dir: Path):
    """The sample LMS on `data_dir`, with its Airflow connections in the environment."""
    with LmsSampleServer(data_dir) as lms, mock.patch.dict(os.environ, lms.airflow_connections_env()):
        yield lms


def load_day(dsn: str, config) -> None:
    """What a production day runs before the features: the HRIS files pending on the SFTP server, the LMS
    (each extraction its own batch), then identities, incrementally (the first run is a full one)."""
    load_hris(dsn, config)
    load_lms(dsn, config)
    resolve_identities(config, dsn=dsn)


def feature_rows(dsn: str, table: str = "employee_features") -> dict[date, dict[str, dict]]:
    """reference date -> HRIS employee id -> every column of its row but the build's id and time."""
    rows: dict[date, dict[str, dict]] = defaultdict(dict)
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql.SQL("select * from {}").format(sql.Identifier("mart", table)))
        for row in cur:
            rows[row["reference_date"]][row["hris_employee_id"]] = {
                column: value for column, value in row.items() if column not in BOOKKEEPING
            }
    return rows


def differences(first: dict, second: dict, names: tuple, columns: Collection[str] = ()) -> list[str]:
    """One line per employee whose rows of a date differ (in `columns`; all when empty): missing on one
    side, or {column: (first, second)}."""
    lines = [f"{who}: only in the {names[0]}" for who in sorted(first.keys() - second.keys())]
    lines += [f"{who}: only in the {names[1]}" for who in sorted(second.keys() - first.keys())]
    for who in sorted(first.keys() & second.keys()):
        changed = {
            column: (value, second[who][column])
            for column, value in first[who].items()
            if (not columns or column in columns) and second[who][column] != value
        }
        if changed:
            lines.append(f"{who}: {changed}")
    return lines


def late_statements(generated: Path, config) -> dict[date, int]:
    """Per replayed date: the learner statements dated on or before it that the LRS stored after its
    cut-off."""
    with open(generated / "lms" / "statements.jsonl", encoding="utf-8") as source:
        learning = [s for s in map(json.loads, source) if not s["verb"]["id"].endswith("/voided")]
    return {
        day: sum(
            parse_time(s["timestamp"]).date() <= day and parse_time(s["stored"]) > cutoff(day, config)
            for s in learning
        )
        for day in REPLAYED
    }


@pytest.mark.timeout(900)
def delay_a_void(generated: Path) -> str:
    """Store one void three days after its target instead of within the hour (as the generator does), the
    target stored inside the window: dates whose cut-off falls between count the statement, later dates do
    not, and a first install, whose LRS no longer lists the voided statement, must fetch it to agree."""
    path = generated / "lms" / "statements.jsonl"
    statements = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_id = {statement["id"]: statement for statement in statements}
    start, end = (datetime.combine(day, time(), tzinfo=UTC) for day in (REPLAYED[1], REPLAYED[-4]))
    for void in statements:
        target = by_id.get(void["object"].get("id")) if void["verb"]["id"].endswith("/voided") else None
        if target is not None and start <= parse_time(target["stored"]) <= end:
            delayed = parse_time(target["stored"]) + timedelta(days=3)
            void["stored"] = delayed.isoformat().replace("+00:00", "Z")
            path.write_text(
                "".join(json.dumps(statement) + "\n" for statement in statements), encoding="utf-8"
            )
            return target["id"]
    raise AssertionError("no voided statement stored inside the window")


def test_a_backfill_of_a_generated_enterprise_equals_its_day_by_day_replay(
    tmp_path, config, warehouse_dsn, make_warehouse
):
    generated = generate(tmp_path / "enterprise", **ENTERPRISE)
    voided_late = delay_a_void(generated)
    generated_hris = generated / "sftp" / "outbound" / "hris"
    served_hris = tmp_path / "sftp" / "outbound" / "hris"
    served_hris.mkdir(parents=True)
    os.chmod(tmp_path / "sftp", 0o755)  # sshd's chroot refuses a group/world-writable root
    replay, backfill = warehouse_dsn, make_warehouse()
    before_window = REPLAYED[0] - timedelta(days=1)

    sftp = SftpSampleServer(tmp_path / "sftp")
    with sftp, mock.patch.dict(os.environ, sftp.airflow_connection_env()):
        # Production so far: everything known by the cut-off of the day before the window.
        deliver(generated_hris, served_hris, {file_date(p) for p in generated_hris.iterdir()} - set(REPLAYED))
        sftp.sync()
        with lms_serving(lms_as_known_at(generated, tmp_path / "lms-before", cutoff(before_window, config))):
            load_day(replay, config)

        # Then day by day: that day's files, the LMS as of its cut-off, that day's build.
        for day in REPLAYED:
            assert deliver(generated_hris, served_hris, [day]) == 4  # employees and compensation, with .ctl
            sftp.sync()
            with lms_serving(lms_as_known_at(generated, tmp_path / f"lms-{day}", cutoff(day, config))):
                load_day(replay, config)
            now = cutoff(day, config) + timedelta(hours=1)
            built = build_features(config, dsn=replay, reference_dates=[day], now=now)
            assert built["reference_dates_built"] == [day.isoformat()], built["reference_dates_deferred"]

        # A first install: the finished SFTP tree (the same files, modified at the same times), the whole LMS.
        with lms_serving(generated):
            load_hris(backfill, config)
            load_lms(backfill, config)
    resolve_identities(config, dsn=backfill, full=True)
    now = cutoff(REPLAYED[-1], config) + timedelta(hours=1)
    built = build_features(config, dsn=backfill, reference_dates=REPLAYED, now=now)
    assert built["reference_dates_built"] == [d.isoformat() for d in REPLAYED], built

    replayed, backfilled = feature_rows(replay), feature_rows(backfill)
    assert sorted(backfilled) == REPLAYED
    assert all(len(backfilled[day]) > 100 for day in REPLAYED)
    mismatched = [
        f"{day} {line}"
        for day in REPLAYED
        for line in differences(replayed[day], backfilled[day], ("replay", "backfill"))
    ]
    assert not mismatched, "(replay, backfill):\n" + "\n".join(mismatched[:30])
    # the first install never saw the statement voided days later in a listing: it fetched it, and keeps it
    # voided
    with psycopg.connect(backfill) as conn:
        assert conn.execute(
            "select is_voided from core.lms_activity where statement_id = %s", (voided_late,)
        ).fetchall() == [(True,)]

    # The window held facts its cut-offs excluded: as known now, some of its dates read otherwise. The
    # generator reports every HR change in the file of its date, so only statements stored after the
    # cut-off of a date they belong to can make that date differ, and only in its learning features.
    late = late_statements(generated, config)
    restated = build_features(config, dsn=backfill, reference_dates=REPLAYED, restate=True, now=KNOWN_NOW)
    assert restated["reference_dates_built"] == [d.isoformat() for d in REPLAYED]
    known_now = feature_rows(backfill, "employee_features_restated")
    names = ("as-of rows", "restatement")
    changed = {day: differences(backfilled[day], known_now[day], names, FEATURE_COLUMNS) for day in REPLAYED}
    changed = {day: lines for day, lines in changed.items() if lines}
    print(
        "statements stored after the cut-off of a replayed date they belong to:",
        {str(day): count for day, count in late.items()},
        "; rows that read otherwise as known now:",
        {str(day): len(lines) for day, lines in changed.items()},
    )
    assert changed, "no replayed date reads otherwise as known now: its cut-offs excluded nothing"
    assert set(changed) <= {day for day, count in late.items() if count}, changed
    assert all(known_now[day].keys() == backfilled[day].keys() for day in REPLAYED)  # the same people
    differing_columns = {
        column
        for day in REPLAYED
        for who, row in backfilled[day].items()
        for column in FEATURE_COLUMNS
        if known_now[day][who][column] != row[column]
    }
    assert differing_columns <= set(LMS_COLUMNS), changed
