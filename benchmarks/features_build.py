"""Features and labels benchmark (issue 6): a full build and one daily incremental run, in SQL.

    flock /tmp/turnover_bench.lock env PYTHONPATH=plugins .venv/bin/python benchmarks/features_build.py
        [--employees 100000] [--statements 20000000] [--json-out FILE] [--keep]

Goal (issue 6): 100,000 employees, 20,000,000 statements, 24 month-end reference dates; one daily
incremental run takes at most 5 % of the full build; the Python side stays small (the work is SQL).

1. Creates a throwaway database, migrates it, loads include/course_catalog.csv and generates in SQL
   (generate_series, a hash of the row number for spread):
   - `core.employee_history`: the first HR snapshot is 2024-07-01; 82 % were hired before it, the
     rest hire over the two years. Intervals change at the monthly snapshots for promotions (1 in
     6) and manager changes (1 in 4), at the yearly reviews (new performance rating; nobody rated
     before their first review), and on the day of a termination. Terminations ~15 % a year
     (three in four voluntary); managers (1 in 20, the team of 19 after them) never leave.
   - `core.compensation_event` and its knowledge versions: hire, yearly merit increases (a pay freeze
     for 1 in 17), promotions, market adjustments.
   - `raw.lms_user`: one account per employee, externalId = the SSO GUID.
   - `core.lms_activity`: learning sessions of five statements on one course (launched,
     enrolled, completed, passed/scored with a score, durations) by actor
     `account:https://lms.northwind.example|<lms_user_id>`, spread over each employee's time in
     the 24 months 2024-07-01..2026-06-30; 1 session in 40 is stored 1-6 days after it happened.
   Rows are inserted in stored order, as the LMS loader appends them.
   The activity indexes are dropped for the insert and created again (same definitions); then
   VACUUM ANALYZE, what autovacuum would have done by then.
2. Resolves identities (full; timed, but not part of the feature build).
3. Times the full build: `build_features(config, reference_dates=[2026-06-30])`, the first build of
   the version, which backfills the 24 month-ends before (2024-06-30 precedes the first snapshot
   and is skipped: 24 reference dates in all) and builds the daily aggregate from scratch.
4. VACUUM ANALYZE of the mart tables (autovacuum's job by the next day), then one day of new data
   stored on 2026-07-01: 1/730 of the statement volume (1 session in 40 happened in the days
   before), 0.2 % of the employees still employed resign or are promoted, a few hires with
   accounts and activity, and a few voids of earlier statements, published as the LMS loader does
   (`core.lms_activity.is_voided`, `audit.lms_void_applied` and the batch row in
   `audit.lms_extract_batch`, one transaction). Identities are resolved again (incremental; timed, not part of
   the build).
5. Times the daily run `build_features(config, reference_dates=[2026-07-01])`, then checks that
   the labels it kept equal a label rebuild from scratch, and times a rerun with nothing new (it
   builds nothing: a built date is a function of its cut-off).

Each phase also records what tells a build its inputs are complete (an employees file per day in
`audit.file_manifest`, an LMS extraction past the period in `audit.lms_extract_batch`).

Prints a markdown results table; `--json-out` saves everything. Peak RSS is this process's own
(resource.getrusage). Drops the database unless `--keep`. The server is the one of
`LMS_BENCH_ADMIN_DSN` (default postgresql://postgres@127.0.0.1:5432/postgres), as in lms_load.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from _harness import (
    REPO_ROOT,
    Warehouse,
    analyze_tables,
    json_default,
    machine_description,
    markdown_table,
    on_path,
)

os.environ.setdefault("TQDM_DISABLE", "1")  # GX's progress bars
on_path()
# The same server as the LMS benchmark's.
WAREHOUSE = Warehouse("LMS_BENCH_ADMIN_DSN")
FULL_REFERENCE_DATE = date(2026, 6, 30)
DAILY_REFERENCE_DATE = date(2026, 7, 1)

# Everything below is bound with psycopg parameters, so a literal percent sign is written %%.
HASH_FUNCTION_SQL = """
create or replace function public.bench_hash(value integer) returns integer
language sql immutable parallel safe
as 'select hashint4(value) & 2147483647'
"""

PEOPLE_SQL = """
create table public.bench_person as
with base as (
    select
        n,
        'E' || lpad(n::text, 7, '0') as employee_id,
        'U' || lpad(n::text, 7, '0') as lms_user_id,
        md5('guid' || n)::uuid::text as sso_guid,
        'person.' || n || '@northwind.example' as work_email,
        n %% 20 = 1 as is_manager,
        case
            when n > %(employees)s then %(first_day)s::date + 1
            when n %% 20 = 1 or public.bench_hash(n) %% 100 < 82
                then date '2005-01-03' + public.bench_hash(n + 1) %% (date '2024-06-30' - date '2005-01-03')
            else date '2024-07-01' + public.bench_hash(n + 1) %% 730
        end as hire_date
    from generate_series(1, %(employees)s + %(hires)s) as n
),

exits as (
    -- a uniform exit day in 6.67 years after the first snapshot (or the hire): ~15 %% a year
    select
        base.*,
        greatest(base.hire_date, date '2024-07-01') as first_valid_from,
        case
            when not base.is_manager and base.n <= %(employees)s
                then greatest(base.hire_date, date '2024-07-01') + 30 + public.bench_hash(base.n + 2) %% 2433
        end as exit_date
    from base
),

changes as (
    select
        exits.*,
        case when exits.exit_date <= %(first_day)s::date then exits.exit_date end as termination_date,
        case when exits.n %% 6 = 2
            then (date '2024-08-01' + make_interval(months => public.bench_hash(exits.n + 4) %% 23))::date
        end as promotion_date,
        case when exits.n %% 4 = 1
            then (date '2024-08-01' + make_interval(months => public.bench_hash(exits.n + 5) %% 23))::date
        end as manager_change_date
    from exits
)

select
    changes.*,
    case when public.bench_hash(changes.n + 3) %% 4 = 0 then 'involuntary' else 'voluntary' end
        as termination_category,
    array(
        select distinct starts.start_date
        from unnest(array[
            changes.first_valid_from, changes.promotion_date, changes.manager_change_date, date '2025-03-01',
            date '2026-03-01', changes.termination_date
        ]) as starts (start_date)
        where
            starts.start_date >= changes.first_valid_from
            and starts.start_date <= coalesce(changes.termination_date, %(first_day)s::date)
        order by starts.start_date
    ) as interval_starts
from changes
"""

HISTORY_SQL = """
insert into core.employee_history (
    employee_id, valid_from, valid_to, is_current, closed_by, known_at, source_sha256, sso_guid, work_email,
    first_name, last_name, hire_date, termination_date, termination_type, termination_category,
    termination_reason, employment_status, job_role, job_level, department, location, manager_id, base_salary,
    currency, fte, performance_rating)
select
    person.employee_id,
    interval_row.valid_from,
    interval_row.valid_to,
    interval_row.valid_to is null,
    case when interval_row.valid_to is not null then 'attribute_change' end,
    (interval_row.valid_from + time '06:00') at time zone 'UTC',
    md5('employees-' || interval_row.valid_from),
    person.sso_guid,
    person.work_email,
    'Person',
    'No' || person.n,
    person.hire_date,
    case when interval_row.is_terminal then person.termination_date end,
    case when interval_row.is_terminal then
        case person.termination_category when 'voluntary' then 'Resignation' else 'Dismissal' end
    end,
    case when interval_row.is_terminal then person.termination_category end,
    case when interval_row.is_terminal then
        case person.termination_category when 'voluntary' then 'new job' else 'performance' end
    end,
    case when interval_row.is_terminal then 'terminated' else 'active' end,
    'role-' || person.n %% 40 || case when interval_row.is_promoted then '-senior' else '' end,
    1 + person.n %% 5 + interval_row.is_promoted::integer,
    'dept-' || (person.n / 20) %% 25,
    'site-' || person.n %% 12,
    case
        when person.n %% 400 = 1 then null
        when person.is_manager then 'E' || lpad((400 * (person.n / 400) + 1)::text, 7, '0')
        else 'E' || lpad((20 * ((person.n / 20 + case when interval_row.is_new_manager then 7 else 0 end)
            %% %(managers)s) + 1)::text, 7, '0')
    end,
    40000 + person.n %% 50 * 1500 + interval_row.is_promoted::integer * 5000,
    'USD',
    1.0,
    case when person.hire_date <= interval_row.last_review_date
        then 1 + public.bench_hash(person.n * 3 + extract(year
            from interval_row.last_review_date)::integer) %% 5
    end
from public.bench_person as person
cross join lateral generate_series(1, cardinality(person.interval_starts)) as ordinal
cross join lateral (
    select
        person.interval_starts[ordinal] as valid_from,
        person.interval_starts[ordinal + 1] as valid_to,
        person.termination_date is not null and ordinal = cardinality(person.interval_starts) as is_terminal,
        coalesce(person.interval_starts[ordinal] >= person.promotion_date, false) as is_promoted,
        coalesce(person.interval_starts[ordinal] >= person.manager_change_date, false) as is_new_manager,
        case
            when person.interval_starts[ordinal] >= date '2026-03-01' then date '2026-03-01'
            when person.interval_starts[ordinal] >= date '2025-03-01' then date '2025-03-01'
            else date '2024-03-01'
        end as last_review_date
) as interval_row
where person.n <= %(employees)s
"""

# Feature rows read the knowledge versions of pay changes (migration 0025): each change is known from its
# first file and never corrected here.
COMPENSATION_VERSION_SQL = """
insert into core.compensation_event_version (employee_id, effective_date, change_type, previous_base_salary,
    new_base_salary, currency, source_sha256, known_from, change_pct)
select
    employee_id, effective_date, change_type, previous_base_salary, new_base_salary, currency, source_sha256,
    known_at, change_pct
from core.compensation_event
"""

COMPENSATION_SQL = """
insert into core.compensation_event (employee_id, effective_date, change_type, previous_base_salary,
    new_base_salary, currency, change_pct, source_sha256, known_at)
select
    person.employee_id,
    event.effective_date,
    event.change_type,
    50000,
    round(50000 * (1 + coalesce(event.change_pct, 0) / 100), 2),
    'USD',
    event.change_pct,
    md5('compensation-' || event.effective_date),
    (event.effective_date + time '06:00') at time zone 'UTC'
from public.bench_person as person
cross join lateral (
    values
    (person.hire_date, 'hire', null::numeric),
    (date '2024-03-01', 'merit_increase', 2 + person.n %% 4),
    (date '2025-03-01', case when person.n %% 17 = 0 then 'pay_freeze' else 'merit_increase' end,
        case when person.n %% 17 = 0 then 0 else 2 + (person.n / 3) %% 4 end),
    (date '2026-03-01', 'merit_increase', 2 + (person.n / 5) %% 4),
    (person.promotion_date, 'promotion', 8 + person.n %% 5),
    (case when person.n %% 23 = 0 then date '2025-09-01' end, 'market_adjustment', 5)
) as event (effective_date, change_type, change_pct)
where
    person.n <= %(employees)s
    and event.effective_date >= person.hire_date
    and event.effective_date <= coalesce(person.termination_date, %(first_day)s::date)
"""

LMS_USER_SQL = """
insert into raw.lms_user (lms_user_id, last_modified_at, user_name, external_id, work_email,
    primary_email, emails,
    is_active, created_at, valid_to, resource, batch_id, extracted_at)
select
    account.lms_user_id,
    account.created_at,
    account.work_email,
    account.sso_guid,
    account.work_email,
    account.work_email,
    jsonb_build_array(jsonb_build_object('value', account.work_email, 'type', 'work', 'primary', true)),
    account.termination_date is null,
    account.created_at,
    null,
    jsonb_build_object('id', account.lms_user_id, 'userName', account.work_email, 'externalId',
    account.sso_guid), 'bench',
    greatest(account.created_at, %(extracted_at)s::timestamptz)
from (
    select
        person.*,
        (greatest(person.hire_date, date '2015-01-05') + time '09:00') at time zone 'UTC' as created_at
    from public.bench_person as person
    where person.n between %(first_n)s and %(last_n)s
) as account
"""

# Sessions of five statements by one learner on one course; a session is placed on a day of the
# learner's employment within [day_from, day_to]. 1 session in 40 is a late one: it happened 1-6
# days before it was stored. Stored times are kept within [stored_from, stored_to].
ACTIVITY_SQL = """
insert into core.lms_activity (statement_id, learner_identifier, learner_identifier_type, event_type, verb_id,
    course_id, score_normalized, is_success, is_completion, duration_seconds, occurred_at,
    is_timestamp_assumed_utc, stored_at, is_voided)
with sessions as (
    select
        session_number,
        %(first_n)s + public.bench_hash(session_number) %% (%(last_n)s - %(first_n)s + 1) as n
    from generate_series(%(first_session)s, %(first_session)s + %(sessions)s - 1) as session_number
),

spans as (
    select
        sessions.session_number,
        person.lms_user_id,
        greatest(person.first_valid_from, %(day_from)s::date) as span_from,
        least(coalesce(person.termination_date - 1, %(day_to)s::date), %(day_to)s::date) as span_to
    from sessions
    inner join public.bench_person as person on sessions.n = person.n
),

placed as (
    select
        session_number,
        lms_user_id,
        (span_from + public.bench_hash(session_number + 7) %% (span_to - span_from + 1) + time '08:00')
            at time zone 'UTC'
        + make_interval(secs => public.bench_hash(session_number + 11) %% 36000) as started_at,
        case when session_number %% 40 = 0 then 1 + public.bench_hash(session_number + 13) %% 6 else 0 end
            as late_days,
        (%(courses)s::text[])[1 + public.bench_hash(session_number + 17) %% cardinality(%(courses)s::text[])]
            as course_id
    from spans
    where span_from <= span_to
),

statements as (
    select
        placed.*,
        step,
        case step
            when 1 then case when session_number %% 4 < 2 then 'enrolled' else 'launched' end
            when 2 then case when session_number %% 2 = 0 then 'completed' else 'launched' end
            when 3 then case when session_number %% 3 = 0 then 'passed' else 'launched' end
            when 4 then case when session_number %% 2 = 1 then 'scored' else 'launched' end
            else 'launched'
        end as event_type,
        placed.started_at + make_interval(mins => 5 * step) as at_time
    from placed
    cross join generate_series(0, 4) as step
)

select
    md5('statement-' || (session_number * 5 + step))::uuid::text,
    'account:https://lms.northwind.example|' || lms_user_id,
    'account',
    event_type,
    'http://adlnet.gov/expapi/verbs/' || event_type,
    course_id,
    case when event_type in ('passed', 'scored')
        then round(0.4 + public.bench_hash(session_number + step) %% 600 / 1000.0, 6)
    end,
    case when event_type = 'passed' then true end,
    case when event_type = 'completed' then true end,
    case when event_type in ('launched', 'completed')
        then 60 + public.bench_hash(session_number * 5 + step) %% 3540 end,
    at_time - make_interval(days => late_days),
    false,
    least(greatest(at_time + interval '2 minutes', %(stored_from)s::timestamptz), %(stored_to)s::timestamptz)
        as stored_at,
    false
from statements
order by stored_at  -- a loader appends statements as the LRS stores them
"""

# The day after the full build: of the employees still employed, 1 in 1000 resigns and 1 in 1000
# is promoted, with a new HR interval from the new day's file. Four statements: the current intervals
# of those employees are copied, closed, changed and inserted again.
HR_CHANGE_STATEMENTS = (
    """
    create table public.bench_changed as
    select history.*
    from core.employee_history as history
    inner join public.bench_person as person on history.employee_id = person.employee_id
    where history.is_current and history.termination_date is null and not person.is_manager
        and person.n %% 1000 in (7, 11)
    """,
    """
    update core.employee_history as history
    set valid_to = %(day)s::date, is_current = false, closed_by = 'attribute_change'
    from public.bench_changed as changed
    where history.employee_id = changed.employee_id and history.valid_from = changed.valid_from
    """,
    """
    update public.bench_changed as changed
    set
        valid_from = %(day)s::date,
        known_at = (%(day)s::date + time '06:00') at time zone 'UTC',
        source_sha256 = md5('employees-' || %(day)s),
        termination_date = case when person.n %% 1000 = 7 then %(day)s::date end,
        termination_type = case when person.n %% 1000 = 7 then 'Resignation' end,
        termination_category = case when person.n %% 1000 = 7 then 'voluntary' end,
        termination_reason = case when person.n %% 1000 = 7 then 'new job' end,
        employment_status = case when person.n %% 1000 = 7 then 'terminated' else 'active' end,
        job_level = changed.job_level + (person.n %% 1000 = 11)::integer
    from public.bench_person as person
    where changed.employee_id = person.employee_id
    """,
    "insert into core.employee_history select * from public.bench_changed",
)

NEW_HIRES_SQL = """
insert into core.employee_history (
    employee_id, valid_from, valid_to, is_current, closed_by, known_at, source_sha256, sso_guid, work_email,
    first_name, last_name, hire_date, employment_status, job_role, job_level, department, location,
    manager_id, base_salary, currency, fte)
select
    employee_id, hire_date, null, true, null, (hire_date + time '06:00') at time zone 'UTC',
    md5('employees-' || hire_date), sso_guid, work_email, 'Person', 'No' || n, hire_date, 'active',
    'role-' || n %% 40, 1, 'dept-' || (n / 20) %% 25, 'site-' || n %% 12,
    'E' || lpad((20 * ((n / 20) %% %(managers)s) + 1)::text, 7, '0'), 42000, 'USD', 1.0
from public.bench_person
where n > %(employees)s
"""

# What tells a build its inputs are complete: an employees file per day of the period (the history
# above is what they would have built) and an LMS extraction that read the LRS past the period's end.
HRIS_FILES_SQL = """
insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at, status)
select
    'employees_' || to_char(day, 'YYYYMMDD') || '.csv', md5('employees-' || day::date), 'employees',
        day::date, 1,
    (day::date + 1 + time '06:00') at time zone 'UTC', 'loaded'
from generate_series(%(day_from)s::date, %(day_to)s::date, interval '1 day') as days (day)
"""

LMS_READ_SQL = """
insert into audit.lms_extract_batch (batch_id, source, endpoint, pages, statements_received, statements_new,
    statements_already_loaded, statements_rejected, voids_applied, reject_rate, status, started_at,
        finished_at)
values ('bench-read-' || %(day_to)s, 'xapi:lms_api', '/statements', 1, 0, 0, 0, 0, 0, 0, 'published',
    (%(day_to)s::date + 1 + time '13:00') at time zone 'UTC',
        (%(day_to)s::date + 1 + time '13:00') at time zone 'UTC')
"""

# Voids of statements from sessions spread over the whole history, recorded as the LMS loader
# records them: the flags, the audit rows and the published batch that delivered them, in one
# transaction whose batch finished_at is its now().
VOID_SQL = """
with voided as (
    update core.lms_activity
    set is_voided = true
    where statement_id in (
        select md5('statement-' || (public.bench_hash(k) %% %(sessions)s * 5 + 2))::uuid::text
        from generate_series(1, %(voids)s) as k
    )
    returning statement_id, occurred_at
),

applied as (
    insert into audit.lms_void_applied (voided_statement_id, voiding_statement_id, voided_occurred_at,
        void_stored_at, batch_id)
    select statement_id, md5('void-' || statement_id)::uuid::text, occurred_at, %(void_stored_at)s,
        'bench-daily'
    from voided
    returning voided_statement_id
)

insert into audit.lms_extract_batch (batch_id, source, endpoint, pages, statements_received, statements_new,
    statements_already_loaded, statements_rejected, voids_applied, reject_rate, status, started_at,
        finished_at)
select 'bench-daily', 'xapi:lms_api', '/statements', 1, count(*), count(*), 0, 0, count(*), 0, 'published',
    now(), now()
from applied
"""

# The labels a rebuild from scratch would hold, against the labels the daily run kept (all but
# hr_known_through, which a settled label keeps from when it was decided).
LABEL_CHECK_SQL = """
select count(*) from (
    (select employee_key, reference_date, horizon_days, hris_employee_id, label_status, label, exit_date,
            exit_category, is_censored from rebuilt_labels
     except all
     select employee_key, reference_date, horizon_days, hris_employee_id, label_status, label, exit_date,
            exit_category, is_censored from mart.turnover_label)
    union all
    (select employee_key, reference_date, horizon_days, hris_employee_id, label_status, label, exit_date,
            exit_category, is_censored from mart.turnover_label
     except all
     select employee_key, reference_date, horizon_days, hris_employee_id, label_status, label, exit_date,
            exit_category, is_censored from rebuilt_labels)
) as differences
"""

COUNT_QUERIES = {
    "employees (distinct employee_id)": "select count(distinct employee_id) from core.employee_history",
    "core.employee_history rows": "select count(*) from core.employee_history",
    "core.compensation_event rows": "select count(*) from core.compensation_event",
    "raw.lms_user rows": "select count(*) from raw.lms_user",
    "core.lms_activity rows": "select count(*) from core.lms_activity",
    "voided statements": "select count(*) from core.lms_activity where is_voided",
    "core.employee_identity rows": "select count(*) from core.employee_identity",
    "mart.learner_daily_activity rows": "select count(*) from mart.learner_daily_activity",
    "mart.employee_features rows": "select count(*) from mart.employee_features",
    "reference dates built": "select count(distinct reference_date) from mart.employee_features",
    "mart.turnover_label rows": "select count(*) from mart.turnover_label",
    "labelled rows (training set)": "select count(*) from mart.training_set",
}


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def course_ids() -> list[str]:
    with open(REPO_ROOT / "include" / "course_catalog.csv", encoding="utf-8-sig", newline="") as handle:
        return [row["course_id"] for row in csv.DictReader(handle)]


def run_statements(dsn: str, statements: list[tuple[str, str, dict[str, Any]]]) -> dict[str, float]:
    """Execute each (label, SQL, parameters) in autocommit, timing each."""
    import psycopg

    timings: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for label, statement, params in statements:
            started = time.perf_counter()
            conn.execute(statement, params)
            timings[label] = round(time.perf_counter() - started, 2)
            print(f"  {label}: {timings[label]} s", flush=True)
    return timings


def activity_params(sizes: dict[str, int], **overrides: Any) -> dict[str, Any]:
    params = {
        "first_n": 1,
        "last_n": sizes["employees"],
        "first_session": 0,
        "sessions": sizes["sessions"],
        "day_from": "2024-07-01",
        "day_to": FULL_REFERENCE_DATE,
        "stored_from": "2024-07-01 00:00+00",
        "stored_to": "2026-06-30 23:59:59+00",
        "courses": course_ids(),
    }
    return params | overrides


def rebuild_activity_indexes(dsn: str, generate) -> dict[str, float]:
    """Drop the indexes of core.lms_activity, run `generate`, and create the same indexes again."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        indexes = conn.execute(
            "select indexname, indexdef, conname from pg_indexes left join pg_constraint on conname = "
            "indexname where schemaname = 'core' and tablename = 'lms_activity'"
        ).fetchall()
        for name, _, constraint in indexes:
            if constraint:
                conn.execute(
                    psycopg.sql.SQL("alter table core.lms_activity drop constraint {}").format(
                        psycopg.sql.Identifier(constraint)
                    )
                )
            else:
                conn.execute(psycopg.sql.SQL("drop index core.{}").format(psycopg.sql.Identifier(name)))
    timings = generate()
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, definition, constraint in indexes:
            if constraint:
                conn.execute(
                    psycopg.sql.SQL(
                        "alter table core.lms_activity add constraint {} primary key (statement_id)"
                    ).format(psycopg.sql.Identifier(constraint))
                )
            else:
                conn.execute(psycopg.sql.SQL(definition))
            print(f"  index {name} again", flush=True)
    timings["activity indexes"] = round(time.perf_counter() - started, 2)
    return timings


def generate_population(dsn: str, sizes: dict[str, int]) -> dict[str, float]:
    import psycopg

    base = sizes | {"first_day": FULL_REFERENCE_DATE}
    timings = run_statements(
        dsn,
        [
            ("hash function", HASH_FUNCTION_SQL, {}),
            ("people", PEOPLE_SQL, base),
            ("core.employee_history", HISTORY_SQL, base),
            ("core.compensation_event", COMPENSATION_SQL, base),
            ("core.compensation_event_version", COMPENSATION_VERSION_SQL, {}),
            (
                "employees files",
                HRIS_FILES_SQL,
                {"day_from": date(2024, 7, 1), "day_to": FULL_REFERENCE_DATE},
            ),
            ("LMS read", LMS_READ_SQL, {"day_to": FULL_REFERENCE_DATE}),
            (
                "raw.lms_user",
                LMS_USER_SQL,
                {"first_n": 1, "last_n": sizes["employees"], "extracted_at": "2024-07-01 00:00+00"},
            ),
            ("analyze people", "analyze public.bench_person", {}),
        ],
    )
    timings |= rebuild_activity_indexes(
        dsn, lambda: run_statements(dsn, [("core.lms_activity", ACTIVITY_SQL, activity_params(sizes))])
    )
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze")
    timings["vacuum analyze"] = round(time.perf_counter() - started, 2)
    return timings


def apply_daily_change(dsn: str, sizes: dict[str, int]) -> dict[str, float]:
    """One day of new data, stored on DAILY_REFERENCE_DATE."""
    day = DAILY_REFERENCE_DATE
    daily_sessions = max(sizes["sessions"] // 730, 1)
    hires = {"first_n": sizes["employees"] + 1, "last_n": sizes["employees"] + sizes["hires"]}
    stored = {
        "day_from": day,
        "day_to": day,
        "stored_from": f"{day} 00:05+00",
        "stored_to": f"{day} 23:59+00",
    }
    return run_statements(
        dsn,
        [
            *(
                (f"HR changes ({step + 1}/4)", statement, {"day": day})
                for step, statement in enumerate(HR_CHANGE_STATEMENTS)
            ),
            ("new hires", NEW_HIRES_SQL, sizes),
            ("new hires' LMS accounts", LMS_USER_SQL, hires | {"extracted_at": f"{day} 07:00+00"}),
            (
                "new statements",
                ACTIVITY_SQL,
                activity_params(sizes, first_session=sizes["sessions"], sessions=daily_sessions, **stored),
            ),
            (
                "new hires' statements",
                ACTIVITY_SQL,
                activity_params(
                    sizes,
                    first_session=sizes["sessions"] + daily_sessions,
                    sessions=sizes["hires"] * 2,
                    **hires,
                    **stored,
                ),
            ),
            (
                "voids",
                VOID_SQL,
                {"sessions": sizes["sessions"], "voids": sizes["voids"], "void_stored_at": f"{day} 12:00+00"},
            ),
            ("employees file", HRIS_FILES_SQL, {"day_from": day, "day_to": day}),
            ("LMS read", LMS_READ_SQL, {"day_to": day}),
        ],
    )


IDENTITY_TABLES = (
    "core.identity_employment",
    "core.identity_work_email",
    "core.identity_lms_account",
    "core.identity_learner",
    "core.hris_employee_key",
    "core.employee_key_registry",
    "core.lms_account_match",
    "core.employee_identity",
)
MART_TABLES = (
    "mart.learner_daily_activity",
    "mart.employee_features",
    "mart.turnover_label",
    "audit.extract_watermark",
)


def labels_differing_from_a_rebuild(dsn: str, config: dict[str, Any]) -> int:
    """Rows in which the kept labels and a rebuild of every label from scratch differ."""
    import psycopg
    from psycopg import sql

    from turnover_signals.features.labels import fill_label_scope, label_parameters
    from turnover_signals.sqlfiles import read_sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        fill_label_scope(conn, everything=True)
        conn.execute(
            sql.SQL("create temp table rebuilt_labels as {}").format(
                sql.SQL(read_sql("mart", "turnover_label"))
            ),
            label_parameters(conn, config),
        )
        return conn.execute(LABEL_CHECK_SQL).fetchone()[0]


def timed_build(config: dict[str, Any], dsn: str, reference_date: date) -> dict[str, Any]:
    from turnover_signals.features.build import build_features

    started = time.perf_counter()
    summary = build_features(config, dsn=dsn, reference_dates=[reference_date])
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    summary["peak_rss_mib_after"] = peak_rss_mib()
    dates = summary["reference_dates_built"]
    print(
        f"  {summary['wall_seconds']} s; dates {dates[0] if dates else '-'}..{dates[-1] if dates else '-'} "
        f"({len(dates)}), rows {summary['rows_built']:,}, deferred "
        f"{list(summary['reference_dates_deferred'])}, daily {summary['daily_mode']} "
        f"{summary['daily_rows_written']:,}; steps {summary['seconds']}",
        flush=True,
    )
    return summary


def timed_resolve(config: dict[str, Any], dsn: str, full: bool) -> dict[str, Any]:
    from turnover_signals.identity.resolve import resolve_identities

    started = time.perf_counter()
    summary = resolve_identities(config, dsn=dsn, full=full)
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    print(f"  identities ({summary['mode']}): {summary['wall_seconds']} s", flush=True)
    return summary


def row_counts(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {label: conn.execute(query).fetchone()[0] for label, query in COUNT_QUERIES.items()}


def results_table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    steps = list(dict.fromkeys(step for run in runs.values() for step in run["seconds"]))
    table = markdown_table(
        ["run", "wall s", "dates", "rows built", "daily rows", *steps],
        (
            [
                label,
                f"{run['wall_seconds']:.2f}",
                len(run["reference_dates_built"]),
                f"{run['rows_built']:,}",
                f"{run['daily_rows_written']:,}",
                *(f"{run['seconds'].get(step, 0):.2f}" for step in steps),
            ]
            for label, run in runs.items()
        ),
    )
    ratio = runs["daily incremental"]["wall_seconds"] / runs["full build"]["wall_seconds"]
    identity = result["identity"]
    return "\n".join(
        [
            table,
            "",
            f"incremental / full = {ratio:.2%}; goal ≤ 5 %: " + ("met" if ratio <= 0.05 else "NOT met"),
            f"labels kept by the daily run differing from a rebuild: {result['label_differences']}",
            f"identities: full {identity.get('full', {}).get('wall_seconds')} s, incremental "
            f"{identity.get('incremental', {}).get('wall_seconds')} s (not part of the feature build)",
            f"peak RSS (this Python process): {result['peak_rss_mib']} MiB",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--employees", type=int, default=100_000)
    parser.add_argument("--statements", type=int, default=20_000_000)
    parser.add_argument("--json-out")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--save-before-daily",
        action="store_true",
        help="keep a copy of the database as it is just before the daily run (<name>_before_daily)",
    )
    parser.add_argument(
        "--daily-from",
        metavar="DATABASE",
        help="only the daily run (and the rerun), on a copy of a database saved before it",
    )
    parser.add_argument("--full-json", help="with --daily-from: the --json-out of the run that saved it")
    args = parser.parse_args()

    from turnover_signals.config import load_config
    from turnover_signals.lms.catalog import load_course_catalog
    from turnover_signals.warehouse import migrate, warehouse_connection

    config = load_config(use_variable=False)
    sizes = {
        "employees": args.employees,
        "sessions": args.statements // 5,
        "managers": (args.employees - 1) // 20 + 1,
        "hires": max(args.employees // 3000, 1),
        "voids": max(args.statements // 500_000, 5),
    }
    name = f"features_bench_{os.getpid()}"
    dsn = WAREHOUSE.dsn_for(name)
    os.environ["AIRFLOW_CONN_WAREHOUSE_POSTGRES"] = dsn.replace("postgresql://", "postgres://", 1)
    result: dict[str, Any] = {
        "sizes": sizes,
        "machine": machine_description(WAREHOUSE.admin_dsn),
        "runs": {},
        "identity": {},
    }
    if args.daily_from:
        return daily_only(args, config, name, dsn, result)
    try:
        WAREHOUSE.create(name)
        with warehouse_connection(dsn=dsn) as conn:
            migrate(conn)
        load_course_catalog(config, dsn=dsn)
        print("generating the population", flush=True)
        result["generate_seconds"] = generate_population(dsn, sizes)
        result["rss_mib_after_generation"] = peak_rss_mib()

        started = time.perf_counter()
        import great_expectations  # noqa: F401  (imported once, outside every timed run)

        result["gx_import_seconds"] = round(time.perf_counter() - started, 2)
        result["identity"]["full"] = timed_resolve(config, dsn, full=True)
        analyze_tables(dsn, IDENTITY_TABLES, vacuum=True)

        print("full build", flush=True)
        result["runs"]["full build"] = timed_build(config, dsn, FULL_REFERENCE_DATE)
        result["counts_after_full"] = row_counts(dsn)
        analyze_tables(dsn, MART_TABLES, vacuum=True)

        print("daily change", flush=True)
        result["change_seconds"] = apply_daily_change(dsn, sizes)
        result["identity"]["incremental"] = timed_resolve(config, dsn, full=False)
        if args.save_before_daily:
            WAREHOUSE.create(f"{name}_before_daily", template=name)
        run_daily(config, dsn, result)
    finally:
        if not args.keep:
            WAREHOUSE.drop(name)
    return report(args, result)


def run_daily(config: dict[str, Any], dsn: str, result: dict[str, Any]) -> None:
    print("daily incremental run", flush=True)
    result["runs"]["daily incremental"] = timed_build(config, dsn, DAILY_REFERENCE_DATE)
    result["label_differences"] = labels_differing_from_a_rebuild(dsn, config)
    print("rerun, nothing new", flush=True)
    result["runs"]["rerun, nothing new"] = timed_build(config, dsn, DAILY_REFERENCE_DATE)
    result["counts"] = row_counts(dsn)


def daily_only(
    args: argparse.Namespace, config: dict[str, Any], name: str, dsn: str, result: dict[str, Any]
) -> int:
    """The daily run on a copy of a database saved by --save-before-daily (to try a change to it)."""
    saved = json.loads(Path(args.full_json).read_text(encoding="utf-8")) if args.full_json else {}
    for key in ("sizes", "runs", "identity", "generate_seconds", "change_seconds", "counts_after_full"):
        if key in saved:
            result[key] = saved[key] if key != "runs" else {"full build": saved[key]["full build"]}
    try:
        WAREHOUSE.create(name, template=args.daily_from)
        import great_expectations  # noqa: F401  (imported once, outside every timed run)

        run_daily(config, dsn, result)
    finally:
        WAREHOUSE.drop(name)
    return report(args, result)


def report(args: argparse.Namespace, result: dict[str, Any]) -> int:
    result["peak_rss_mib"] = peak_rss_mib()
    print()
    print(results_table(result))
    print()
    for label, count in result["counts"].items():
        print(f"{label}: {count:,}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1, default=json_default), encoding="utf-8")
    return 0 if result["label_differences"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
