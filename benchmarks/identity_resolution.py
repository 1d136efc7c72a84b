"""Identity resolution benchmark (issue 5): a full run and a daily incremental run, in SQL.

    PYTHONPATH=plugins .venv/bin/python benchmarks/identity_resolution.py [--employees 500000]
        [--lms-users 600000] [--json-out FILE] [--keep]

Goal (issue 5): 500,000 HRIS employees and 600,000 LMS users; a daily incremental run with 0.5 %
of identities changed takes at most 10 % of the full run.

1. Creates a throwaway database, migrates it, and generates the population in SQL
   (generate_series): `core.employee_history` with one to three intervals per employee (job and
   email changes), ~4 % without an SSO GUID, ~10 % leavers with termination dates, rehires sharing
   the GUID and address of an earlier leaver under a new employee id, mailboxes recycled to a
   namesake after a leaver; `raw.lms_user` (current versions, some with an older version) with
   externalId = GUID for most accounts, email variants (case, +alias, alias domain
   nw-corp.example), duplicate accounts without externalId, ~5 % contractors at
   contractor.example and old corporate accounts HR no longer knows; `core.lms_activity` with 2-5
   statements per account (`account:https://lms.northwind.example|<id>`) and `mbox:` actors for
   ~10 % of employees. One loaded employees file per day goes to `audit.file_manifest`, as the
   HRIS loader records it. Then VACUUM ANALYZE (what autovacuum would have done by then).
2. Imports Great Expectations once (the gate's import is not part of any run), then times
   `resolve_identities(config)` on the empty identity layer: the full run.
3. ANALYZE on the identity tables (autovacuum's job by the next day), then a daily change of 0.5 %
   of the employees: new hires with new accounts and activity (a few of them rehires), terminations
   (an HR interval with a termination date, the LMS account deactivated), email changes (a new HR
   interval, the LMS address updated where the account carries the GUID), job changes, account
   updates (a new directory version), and a day of new statements. All carry later
   known_at / extracted_at / stored_at than the full run saw.
4. Times the incremental `resolve_identities(config)`, then copies the database
   (`create database ... template`), runs a full rebuild there (timed: a full run on a populated
   layer) and compares the identity tables of both databases (core.hris_employee_key,
   core.employee_identity, core.lms_account_match, audit.identity_exception without timestamps).
5. Times a rerun with nothing changed (the fixed cost of an incremental run).

Prints a markdown results table; `--json-out` saves everything. Peak RSS is this process's own
(the work is in PostgreSQL). Drops the databases unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from _harness import (
    Warehouse,
    analyze_tables,
    json_default,
    machine_description,
    markdown_table,
    on_path,
)

os.environ.setdefault("TQDM_DISABLE", "1")  # GX's progress bars
on_path()

WAREHOUSE = Warehouse("IDENTITY_BENCH_ADMIN_DSN")
# What autovacuum would have analyzed by the next day.
ANALYZED_TABLES = (
    "core.identity_employment",
    "core.identity_work_email",
    "core.identity_lms_account",
    "core.identity_learner",
    "core.hris_employee_key",
    "core.employee_key_registry",
    "core.lms_account_match",
    "core.employee_identity",
    "audit.identity_exception",
)
CORP = "northwind.example"
LMS_HOME = "https://lms.northwind.example"
FULL_DAY = "2026-01-01"  # the last employees file before the daily change
CHANGE_DAY = "2026-01-02"

FIRST_NAMES = "ann bo cy dee eva finn gus hana ivo jo kai lena max nia omar pia raj sam tara uwe"
LAST_NAMES = (
    "lee ng roe maier berg wu kim li diaz khan novak silva "
    "okafor jones smith tanaka rossi dubois ivanova haddad"
)

# Per employee n, everything is a function of n (hashint4 for spread), so a rehire or a recycled
# mailbox can look up the leaver it follows (n - 5) by the same formulas.
PEOPLE_SQL = """
create table public.bench_person as
with base as (
    select
        n,
        'E' || lpad(n::text, 7, '0') as employee_id,
        (string_to_array('%(first_names)s', ' '))[1 + (hashint4(n) & 2147483647) % 20] as first_name,
        (string_to_array('%(last_names)s', ' '))[1 + (hashint4(n * 7 + 1) & 2147483647) % 20] as last_name,
        case
            -- leavers followed by a rehire (n + 5) or a namesake taking the mailbox (n + 5):
            -- hired before 2024
            when n % 50 = 0 then date '2006-01-02' + (hashint4(n + 11) & 2147483647) % 6500
            else date '2006-01-02' + (hashint4(n + 11) & 2147483647) % 7250
        end as hire_date,
        case when n % 25 <> 13 then md5('guid' || n)::uuid::text end as sso_guid
    from generate_series(1, %(employees)s) as n
),

leavers as (
    select
        base.*,
        case
            when n % 50 = 0 then date '2024-02-01' + (n / 50) % 300
            when n % 10 = 0 and hire_date < date '2025-10-01'
                then least(greatest(hire_date,
                    date '2024-01-01') + 30 + (hashint4(n + 23) & 2147483647) % 600,
                           date '2025-12-20')
        end as termination_date
    from base
),

followers as (
    -- n % 100 = 5: rehire of n - 5 (same GUID, same address); n % 100 = 55: a namesake gets the
    -- mailbox of leaver n - 5 (own GUID)
    select
        person.n,
        person.employee_id,
        coalesce(source.first_name, person.first_name) as first_name,
        coalesce(source.last_name, person.last_name) as last_name,
        coalesce(source.termination_date + 45 + person.n % 90, person.hire_date) as hire_date,
        case when person.n % 100 = 5 and source.n is not null then source.sso_guid else person.sso_guid end
            as sso_guid,
        person.termination_date,
        source.n as follows_n
    from leavers as person
    left join leavers as source on person.n % 50 = 5 and source.n = person.n - 5
),

final as (
    select
        *,
        first_name || '.' || last_name || coalesce(follows_n, n) || '@%(corp)s' as work_email,
        first_name || '.' || last_name || '-wed' || n || '@%(corp)s' as changed_email,
        greatest(hire_date, date '2024-01-01') as first_valid_from
    from followers
)

select
    final.*,
    array_remove(array[first_valid_from, change_1, case when change_1 is not null then change_2 end], null)
        as interval_starts
from final
cross join lateral (
    select
        case when n % 3 = 1 and first_valid_from + 60 + n % 400 < coalesce(termination_date,
            date '%(full_day)s')
            then first_valid_from + 60 + n % 400 end as change_1
) as first_change
cross join lateral (
    select
        case when n % 9 = 4 and change_1 + 90 + n % 300 < coalesce(termination_date, date '%(full_day)s')
            then change_1 + 90 + n % 300 end as change_2
) as second_change
"""

HISTORY_SQL = """
insert into core.employee_history (
    employee_id, valid_from, valid_to, is_current, closed_by, known_at, source_sha256, sso_guid, work_email,
    first_name, last_name, hire_date, termination_date, termination_type, termination_category,
    termination_reason, employment_status, job_role, job_level, department, location, fte)
select
    person.employee_id,
    person.interval_starts[ordinal],
    person.interval_starts[ordinal + 1],
    person.interval_starts[ordinal + 1] is null,
    case when person.interval_starts[ordinal + 1] is not null then 'attribute_change' end,
    ((person.interval_starts[ordinal] + 1)::timestamp + time '06:00') at time zone 'UTC',
    md5('employees-' || person.interval_starts[ordinal]),
    person.sso_guid,
    case when person.n % 60 = 1 and ordinal > 1 then person.changed_email else person.work_email end,
    initcap(person.first_name),
    initcap(person.last_name),
    person.hire_date,
    case when ordinal = cardinality(person.interval_starts) then person.termination_date end,
    case when ordinal = cardinality(person.interval_starts) and person.termination_date is not null
        then 'Resignation' end,
    case when ordinal = cardinality(person.interval_starts) and person.termination_date is not null
        then 'voluntary' end,
    case when ordinal = cardinality(person.interval_starts) and person.termination_date is not null
        then 'new job' end,
    case when ordinal = cardinality(person.interval_starts) and person.termination_date is not null
        then 'terminated' else 'active' end,
    'role-' || person.n % 40,
    1 + (person.n + ordinal) % 6,
    'dept-' || person.n % 25,
    'site-' || person.n % 12,
    1.0
from public.bench_person as person
cross join lateral generate_series(1, cardinality(person.interval_starts)) as ordinal
"""

# One directory user per employee for ~97 %, duplicates without externalId for 2 %, contractors,
# then old corporate accounts HR no longer knows up to the requested total.
LMS_USERS_SQL = """
create table public.bench_account as
with primary_accounts as (
    select
        'U' || lpad(n::text, 7, '0') as lms_user_id,
        n,
        case when sso_guid is not null and n % 7 <> 3 then
            case when n % 11 = 0 then upper(sso_guid) else sso_guid end
        end as external_id,
        case n % 10
            when 7 then upper(work_email)
            when 8 then replace(work_email, '@', '+lms@')
            when 9 then replace(work_email, '@%(corp)s', '@nw-corp.example')
            else work_email
        end as work_email,
        ((greatest(hire_date, date '2015-03-01' + n % 300) + n % 20)::timestamp + time '09:00')
            at time zone 'UTC' as created_at,
        termination_date is null as is_active
    from public.bench_person
    where n % 33 <> 17
),

duplicates as (
    select
        'D' || lpad(n::text, 7, '0') as lms_user_id,
        n,
        null as external_id,
        replace(work_email, '@', '+learn@') as work_email,
        ((least(greatest(hire_date, date '2015-03-01') + 200, coalesce(termination_date, date '2025-12-01'))
            - 1)::timestamp + time '10:00') at time zone 'UTC' as created_at,
        n % 100 = 7 and termination_date is null as is_active
    from public.bench_person
    where n % 50 = 7
),

contractors as (
    select
        'C' || lpad(k::text, 7, '0') as lms_user_id,
        null::integer as n,
        null as external_id,
        'contractor.' || k || '@contractor.example' as work_email,
        (date '2020-01-01' + k % 2000)::timestamp at time zone 'UTC' as created_at,
        k % 4 <> 0 as is_active
    from generate_series(1, %(contractors)s) as k
),

known as (
    select * from primary_accounts
    union all
    select * from duplicates
    union all
    select * from contractors
),

former as (
    select
        'X' || lpad(k::text, 7, '0') as lms_user_id,
        null::integer as n,
        null as external_id,
        'former.person' || k || '@%(corp)s' as work_email,
        (date '2015-03-01' + k % 3000)::timestamp at time zone 'UTC' as created_at,
        k % 20 = 0 as is_active
    from generate_series(1, greatest(%(lms_users)s - (select count(*) from known), 0)::integer) as k
)

select * from known
union all
select * from former
"""

LMS_VERSIONS_SQL = """
insert into raw.lms_user (
    lms_user_id, last_modified_at, user_name, external_id, work_email, primary_email, emails, is_active,
    created_at, valid_to, resource, batch_id, extracted_at)
select
    account.lms_user_id,
    version.last_modified_at,
    account.work_email,
    account.external_id,
    account.work_email,
    account.work_email,
    jsonb_build_array(jsonb_build_object('value', account.work_email, 'type', 'work', 'primary', true)),
    case when version.is_current then account.is_active else true end,
    account.created_at,
    version.valid_to,
    jsonb_build_object('id', account.lms_user_id, 'userName', account.work_email, 'externalId',
    account.external_id), 'bench-full',
    timestamptz '%(full_day)s 05:00+00' - (hashint4(length(account.lms_user_id) + coalesce(account.n,
        0)) & 1023)
        * interval '1 hour'
from public.bench_account as account
cross join lateral (
    -- one account in ten has an older version (a rename) before the current one
    select account.created_at as last_modified_at, null::timestamptz as valid_to, true as is_current
    where right(account.lms_user_id, 1) <> '3'
    union all
    select account.created_at, least(account.created_at + interval '100 days',
        timestamptz '%(full_day)s'), false
    where right(account.lms_user_id, 1) = '3'
    union all
    select least(account.created_at + interval '100 days', timestamptz '%(full_day)s'), null, true
    where right(account.lms_user_id, 1) = '3'
) as version
"""

ACTIVITY_SQL = """
insert into core.lms_activity (
    statement_id, learner_identifier, learner_identifier_type, event_type, verb_id, course_id, occurred_at,
    is_timestamp_assumed_utc, stored_at, is_voided)
select
    md5(actor.learner_identifier || '#' || k)::uuid::text,
    actor.learner_identifier,
    actor.learner_identifier_type,
    'completed',
    'http://adlnet.gov/expapi/verbs/completed',
    'C-' || lpad(((actor.seed + k) % 300)::text, 3, '0'),
    occurred.at,
    false,
    occurred.at + interval '5 minutes',
    false
from (
    select
        'account:%(lms_home)s|' || lms_user_id as learner_identifier,
        'account' as learner_identifier_type,
        created_at,
        hashint4(coalesce(n, 0) + length(lms_user_id)) & 2147483647 as seed
    from public.bench_account
    union all
    select
        'mbox:' || case when n % 20 = 4 then upper(work_email) else work_email end,
        'mbox',
        ((hire_date + 3)::timestamp + time '08:00') at time zone 'UTC',
        hashint4(n) & 2147483647
    from public.bench_person
    where n % 10 = 4
) as actor
cross join lateral generate_series(1, 2 + actor.seed % 4) as k
cross join lateral (
    select least(actor.created_at + (k * 37 + actor.seed % 30) * interval '1 day',
                 timestamptz '%(full_day)s 00:00+00' - interval '1 hour') as at
) as occurred
"""

MANIFEST_SQL = """
insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at, status)
values (%(name)s, md5(%(name)s), 'employees', %(day)s::date, 1, %(day)s::date + interval '6 hours', 'loaded')
"""

# The day after the full run: 0.5 % of the employees change. Selections are by n modulo 1000,
# among employees still employed (n % 10 = 1 never leaves in the population above).
CHANGE_STATEMENTS: list[tuple[str, str]] = [
    (
        "changed employees",
        """
        create table public.bench_change as
        select n, employee_id, first_name, last_name,
            case n % 1000 when 211 then 'termination' when 421 then 'email_change'
                else 'job_change' end as kind
        from public.bench_person
        where n % 1000 in (211, 421, 631) and termination_date is null and hire_date < date '%(full_day)s'
    """,
    ),
    (
        "close HR intervals",
        """
        update core.employee_history as history
        set valid_to = date '%(change_day)s', is_current = false, closed_by = 'attribute_change'
        from public.bench_change as change
        where history.employee_id = change.employee_id and history.valid_to is null
    """,
    ),
    (
        "new HR intervals",
        """
        insert into core.employee_history (
            employee_id, valid_from, valid_to, is_current, closed_by, known_at, source_sha256, sso_guid,
                work_email,
            first_name, last_name, hire_date, termination_date, termination_type, termination_category,
            termination_reason, employment_status, job_role, job_level, department, location, fte)
        select
            history.employee_id, date '%(change_day)s', null, true, null,
            timestamptz '%(change_day)s 06:00+00', md5('employees-%(change_day)s'), history.sso_guid,
            case when change.kind = 'email_change'
                then lower(change.first_name || '.' || change.last_name || '-new' || change.n || '@%(corp)s')
                else history.work_email end,
            history.first_name, history.last_name, history.hire_date,
            case when change.kind = 'termination' then date '%(full_day)s' end,
            case when change.kind = 'termination' then 'Resignation' end,
            case when change.kind = 'termination' then 'voluntary' end,
            case when change.kind = 'termination' then 'new job' end,
            case when change.kind = 'termination' then 'terminated' else 'active' end,
            history.job_role,
            history.job_level + case when change.kind = 'job_change' then 1 else 0 end,
            history.department, history.location, history.fte
        from core.employee_history as history
        inner join public.bench_change as change on history.employee_id = change.employee_id
        where history.valid_to = date '%(change_day)s'
    """,
    ),
    (
        "new hires",
        """
        create table public.bench_hire as
        select
            hire.n,
            'E' || lpad(hire.n::text, 7, '0') as employee_id,
            -- one in a hundred is the rehire of an earlier leaver (same GUID and address)
            coalesce(source.sso_guid, md5('guid' || hire.n)::uuid::text) as sso_guid,
            coalesce(source.work_email, 'new.hire' || hire.n || '@%(corp)s') as work_email
        from generate_series(%(employees)s + 1, %(employees)s + %(hires)s) as hire (n)
        left join public.bench_person as source
            on
                hire.n % 100 = 0 and source.n = (hire.n - %(employees)s) * 10 + 10
                and source.termination_date is not null
    """,
    ),
    (
        "new hires' HR rows",
        """
        insert into core.employee_history (
            employee_id, valid_from, valid_to, is_current, closed_by, known_at, source_sha256, sso_guid,
                work_email,
            first_name, last_name, hire_date, employment_status, job_role, job_level, department,
                location, fte)
        select employee_id, date '%(change_day)s', null, true, null, timestamptz '%(change_day)s 06:00+00',
            md5('employees-%(change_day)s'), sso_guid, work_email, 'New', 'Hire',
            date '%(change_day)s', 'active', 'role-' || n % 40, 1, 'dept-' || n % 25, 'site-' || n % 12, 1.0
        from public.bench_hire
    """,
    ),
    (
        "changed accounts",
        """
        create table public.bench_account_change as
        select account.lms_user_id, account.external_id,
            case when change.kind = 'email_change' and account.external_id is not null
                then lower(change.first_name || '.' || change.last_name || '-new' || change.n || '@%(corp)s')
                else account.work_email end as work_email,
            change.kind <> 'termination' and account.is_active as is_active
        from public.bench_account as account
        inner join public.bench_change as change on account.n = change.n
        where account.lms_user_id like 'U%' and change.kind in ('termination', 'email_change')
        union all
        -- a directory rename or a GUID the IdP now sends, without any HR change
        select lms_user_id, coalesce(account.external_id, person.sso_guid),
            upper(account.work_email), is_active
        from public.bench_account as account
        inner join public.bench_person as person using (n)
        where account.lms_user_id like 'U%' and account.n % 1000 = 841
    """,
    ),
    (
        "close account versions",
        """
        update raw.lms_user as version set valid_to = timestamptz '%(change_day)s 07:00+00'
        from public.bench_account_change as change
        where version.lms_user_id = change.lms_user_id and version.valid_to is null
    """,
    ),
    (
        "new account versions",
        """
        insert into raw.lms_user (
            lms_user_id, last_modified_at, user_name, external_id, work_email, primary_email,
                emails, is_active,
            created_at, valid_to, resource, batch_id, extracted_at)
        select change.lms_user_id, timestamptz '%(change_day)s 07:00+00', change.work_email,
            change.external_id,
            change.work_email, change.work_email,
            jsonb_build_array(jsonb_build_object('value', change.work_email, 'type', 'work',
            'primary', true)), change.is_active, previous.created_at, null,
            jsonb_build_object('id', change.lms_user_id, 'externalId', change.external_id), 'bench-day',
            timestamptz '%(change_day)s 07:30+00'
        from public.bench_account_change as change
        inner join raw.lms_user as previous
            on previous.lms_user_id = change.lms_user_id
                and previous.valid_to = timestamptz '%(change_day)s 07:00+00'
    """,
    ),
    (
        "new hires' accounts",
        """
        insert into raw.lms_user (
            lms_user_id, last_modified_at, user_name, external_id, work_email, primary_email,
                emails, is_active,
            created_at, valid_to, resource, batch_id, extracted_at)
        select 'U' || lpad(n::text, 7, '0'), timestamptz '%(change_day)s 07:00+00', work_email,
            case when n % 10 <> 3 then sso_guid end, work_email, work_email,
            jsonb_build_array(jsonb_build_object('value', work_email, 'type', 'work', 'primary', true)),
            true, timestamptz '%(change_day)s 07:00+00', null,
            jsonb_build_object('id', 'U' || lpad(n::text, 7, '0')), 'bench-day',
                timestamptz '%(change_day)s 07:30+00'
        from public.bench_hire
    """,
    ),
    (
        "a day of statements",
        """
        insert into core.lms_activity (
            statement_id, learner_identifier, learner_identifier_type, event_type, verb_id, course_id,
            occurred_at, is_timestamp_assumed_utc, stored_at, is_voided)
        select md5('day|' || learner_identifier || '#' || k)::uuid::text, learner_identifier, kind,
            'completed',
            'http://adlnet.gov/expapi/verbs/completed', 'C-001',
                timestamptz '%(change_day)s 08:00+00' + k * interval '1 minute',
            false, timestamptz '%(change_day)s 08:30+00' + k * interval '1 minute', false
        from (
            select 'account:%(lms_home)s|' || lms_user_id as learner_identifier, 'account' as kind
            from public.bench_account where lms_user_id like 'U%' and n % 40 = 9 and is_active
            union all
            select 'account:%(lms_home)s|U' || lpad(n::text, 7, '0'), 'account' from public.bench_hire
            union all
            select 'mbox:' || work_email, 'mbox' from public.bench_hire where n % 5 = 0
        ) as actor
        cross join generate_series(1, 2) as k
    """,
    ),
]


# Written into the generating SQL by `render` (module constants; the SQL's own % are modulo operators).
SQL_CONSTANTS = {
    "full_day": FULL_DAY,
    "change_day": CHANGE_DAY,
    "corp": CORP,
    "lms_home": LMS_HOME,
    "first_names": FIRST_NAMES,
    "last_names": LAST_NAMES,
}


def render(statement: str, sizes: dict[str, int]) -> str:
    """The statement with the constants and the sizes (integers only) written in."""
    for name, value in {**SQL_CONSTANTS, **{k: str(int(v)) for k, v in sizes.items()}}.items():
        statement = statement.replace(f"%({name})s", value)
    return statement


def timed(label: str, timings: dict[str, float], conn: Any, statement: str, sizes: dict[str, int]) -> None:
    started = time.perf_counter()
    conn.execute(render(statement, sizes))
    timings[label] = round(time.perf_counter() - started, 2)
    print(f"  {label}: {timings[label]} s", flush=True)


def generate_population(dsn: str, employees: int, lms_users: int) -> dict[str, float]:
    import psycopg

    params = {"employees": employees, "lms_users": lms_users, "contractors": lms_users // 20}
    timings: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for label, statement in (
            ("people", PEOPLE_SQL),
            ("employee_history", HISTORY_SQL),
            ("directory accounts", LMS_USERS_SQL),
            ("raw.lms_user", LMS_VERSIONS_SQL),
            ("core.lms_activity", ACTIVITY_SQL),
        ):
            timed(label, timings, conn, statement, params)
        for day in ("2025-12-31", FULL_DAY):
            conn.execute(MANIFEST_SQL, {"name": f"employees_{day}.csv", "day": day})  # bound: no % in it
        started = time.perf_counter()
        conn.execute("vacuum analyze")
        timings["vacuum analyze"] = round(time.perf_counter() - started, 2)
    return timings


def apply_daily_change(dsn: str, employees: int, hires: int) -> dict[str, float]:
    import psycopg

    params = {"employees": employees, "hires": hires}
    timings: dict[str, float] = {}
    with psycopg.connect(dsn) as conn:  # one transaction, as a day's loads would commit their own
        for label, statement in CHANGE_STATEMENTS:
            timed(label, timings, conn, statement, params)
        conn.execute(MANIFEST_SQL, {"name": f"employees_{CHANGE_DAY}.csv", "day": CHANGE_DAY})
    return timings


def row_counts(dsn: str) -> dict[str, int]:
    import psycopg

    tables = {
        "employees (distinct employee_id)": "select count(distinct employee_id) from core.employee_history",
        "core.employee_history rows": "select count(*) from core.employee_history",
        "LMS users (current versions)": "select count(*) from raw.lms_user where valid_to is null",
        "raw.lms_user rows": "select count(*) from raw.lms_user",
        "core.lms_activity rows": "select count(*) from core.lms_activity",
        "xAPI actors (core.identity_learner)": "select count(*) from core.identity_learner",
        "core.employee_identity rows": "select count(*) from core.employee_identity",
        "core.lms_account_match rows": "select count(*) from core.lms_account_match",
        "matched LMS users": "select count(*) from core.lms_account_match where employee_key is not null",
        "audit.identity_exception rows": "select count(*) from audit.identity_exception",
        "open exceptions": "select count(*) from audit.identity_exception where status = 'open'",
    }
    with psycopg.connect(dsn) as conn:
        return {label: conn.execute(query).fetchone()[0] for label, query in tables.items()}


COMPARED_TABLES = {
    "core.hris_employee_key": "select hris_employee_id, employee_key, match_method, rule_version,"
    " linked_to_hris_employee_id from core.hris_employee_key",
    "core.employee_key_registry": "select employee_key, issued_for_hris_employee_id, merged_into_employee_key"
    " from core.employee_key_registry",
    "core.employee_identity": "select * from core.employee_identity",
    "core.lms_account_match": "select * from core.lms_account_match",
    "audit.identity_exception": "select exception_id, kind, status, hris_employee_ids, lms_user_ids, "
    "employee_keys, evidence, resolution from audit.identity_exception",
    "core.identity_employment": "select * from core.identity_employment",
    "core.identity_work_email": "select * from core.identity_work_email",
    "core.identity_lms_account": "select * from core.identity_lms_account",
    "core.identity_learner": "select * from core.identity_learner",
}


def table_fingerprints(dsn: str) -> dict[str, tuple[int, str]]:
    """Rows and an order-independent digest of each compared table (sum of row md5s, in SQL)."""
    import psycopg
    from psycopg import sql

    fingerprints = {}
    with psycopg.connect(dsn) as conn:
        for name, query in COMPARED_TABLES.items():
            fingerprints[name] = tuple(
                conn.execute(
                    sql.SQL(
                        "select count(*), coalesce(sum(('x' || left(md5(row_text), 15))::bit(60)::bigint), "
                        "0)::text from (select t::text as row_text from ({}) as t) as rows"
                    ).format(sql.SQL(query))
                ).fetchone()
            )
    return fingerprints


def differing_rows(dsn_a: str, dsn_b: str, name: str, limit: int = 5) -> dict[str, list[str]]:
    import psycopg
    from psycopg import sql

    def rows(dsn: str) -> set[str]:
        with psycopg.connect(dsn) as conn:
            query = sql.SQL("select t::text from ({}) as t").format(sql.SQL(COMPARED_TABLES[name]))
            return {r[0] for r in conn.execute(query).fetchall()}

    a, b = rows(dsn_a), rows(dsn_b)
    return {
        "only_incremental": sorted(a - b)[:limit],
        "only_full": sorted(b - a)[:limit],
        "count_only_incremental": [str(len(a - b))],
        "count_only_full": [str(len(b - a))],
    }


def run_resolve(config: dict[str, Any], dsn: str, full: bool = False) -> dict[str, Any]:
    from turnover_signals.identity.resolve import resolve_identities

    started = time.perf_counter()
    summary = resolve_identities(config, dsn=dsn, full=full)
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    print(
        f"  {summary['mode']}: {summary['wall_seconds']} s, steps {summary['seconds']}, scope "
        f"{summary['scope_employees']}/{summary['scope_lms_users']}/{summary['scope_learners']}",
        flush=True,
    )
    return summary


RUN_LABELS = {
    "full": "full (empty layer)",
    "incremental": "incremental (0.5 % changed)",
    "full_rebuild": "full rebuild (populated layer)",
    "noop": "incremental, nothing changed",
}


def results_table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    steps = list(runs["full"]["seconds"])
    table = markdown_table(
        ["run", "wall s", *(f"{step} s" for step in steps), "scope employees / LMS users / actors"],
        (
            [
                label,
                f"{run['wall_seconds']:.2f}",
                *(f"{run['seconds'].get(step, 0):.2f}" for step in steps),
                f"{run['scope_employees']:,} / {run['scope_lms_users']:,} / {run['scope_learners']:,}",
            ]
            for key, label in RUN_LABELS.items()
            for run in [runs[key]]
        ),
        align="l" + "r" * (len(steps) + 1) + "l",
    )
    ratio = runs["incremental"]["wall_seconds"] / runs["full"]["wall_seconds"]
    ratio_rebuild = runs["incremental"]["wall_seconds"] / runs["full_rebuild"]["wall_seconds"]
    verdict = "met" if max(ratio, ratio_rebuild) <= 0.10 else "NOT met"
    return "\n".join(
        [
            table,
            "",
            f"incremental / full = {ratio:.1%} (vs the full rebuild: {ratio_rebuild:.1%}); "
            f"goal ≤ 10 %: {verdict}",
            f"incremental equals a full rebuild: {'yes' if result['identical'] else 'NO'}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--employees", type=int, default=500_000)
    parser.add_argument("--lms-users", type=int, default=600_000)
    parser.add_argument("--json-out")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()

    from turnover_signals.config import load_config
    from turnover_signals.warehouse import migrate, warehouse_connection

    config = load_config(use_variable=False)
    name = f"identity_bench_{os.getpid()}"
    copy_name = f"{name}_rebuild"
    dsn, copy_dsn = WAREHOUSE.dsn_for(name), WAREHOUSE.dsn_for(copy_name)
    os.environ["AIRFLOW_CONN_WAREHOUSE_POSTGRES"] = dsn.replace("postgresql://", "postgres://", 1)
    result: dict[str, Any] = {
        "employees": args.employees,
        "lms_users": args.lms_users,
        "machine": machine_description(WAREHOUSE.admin_dsn),
        "runs": {},
    }
    try:
        WAREHOUSE.drop(copy_name)
        WAREHOUSE.create(name)
        with warehouse_connection(dsn=dsn) as conn:
            migrate(conn)
        print("generating the population", flush=True)
        result["generate_seconds"] = generate_population(dsn, args.employees, args.lms_users)

        started = time.perf_counter()
        import great_expectations  # noqa: F401  (imported once, outside every timed run)

        result["gx_import_seconds"] = round(time.perf_counter() - started, 2)
        print("full run", flush=True)
        result["runs"]["full"] = run_resolve(config, dsn)
        analyze_tables(dsn, ANALYZED_TABLES)
        result["counts_after_full"] = row_counts(dsn)

        hires = max(args.employees // 500, 1)  # 0.2 %; terminations, email and job changes 0.1 % each
        print("daily change", flush=True)
        result["change_seconds"] = apply_daily_change(dsn, args.employees, hires)
        print("incremental run", flush=True)
        result["runs"]["incremental"] = run_resolve(config, dsn)

        WAREHOUSE.create(copy_name, template=name)
        print("full rebuild on a copy", flush=True)
        result["runs"]["full_rebuild"] = run_resolve(config, copy_dsn, full=True)
        incremental_tables, rebuilt_tables = table_fingerprints(dsn), table_fingerprints(copy_dsn)
        result["fingerprints"] = incremental_tables
        result["identical"] = incremental_tables == rebuilt_tables
        result["differences"] = {
            table: differing_rows(dsn, copy_dsn, table)
            for table in COMPARED_TABLES
            if incremental_tables[table] != rebuilt_tables[table]
        }
        print("rerun, nothing changed", flush=True)
        result["runs"]["noop"] = run_resolve(config, dsn)
        result["counts"] = row_counts(dsn)
    finally:
        if not args.keep:
            for database in (name, copy_name):
                WAREHOUSE.drop(database)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    print()
    print(results_table(result))
    print()
    for label, count in result["counts"].items():
        print(f"{label}: {count:,}")
    if result["differences"]:
        print("differences:", json.dumps(result["differences"], indent=1, default=json_default))
    print(f"peak RSS (this Python process): {result['peak_rss_mib']} MiB")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1, default=json_default), encoding="utf-8")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
