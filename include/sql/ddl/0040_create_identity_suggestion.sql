-- The steward's review queue: ranked candidate employees for LMS accounts the deterministic rules leave
-- unmatched (turnover_signals.identity.suggest), and the steward's decision on each. Rules stay the only
-- source of automatic links: an accepted suggestion becomes a steward decision in audit.identity_override,
-- which the next identity run applies; a rejected one stays here and suppresses its pair in later runs.

-- Name similarity (trigrams) and edit distance on the email's local part. Both are trusted contrib
-- extensions: the warehouse owner creates them without superuser rights. A server without contrib (the demo's
-- embedded PostgreSQL) still migrates: the suggestion stage then says what is missing and scores nothing.
do $$
begin
    create extension if not exists pg_trgm;
    create extension if not exists fuzzystrmatch;
exception when feature_not_supported or undefined_file then
    raise notice 'identity suggestions are off: % (install PostgreSQL contrib, then run the migrations)', sqlerrm;
end
$$;

-- one row per (LMS account, candidate employee_key) ever suggested; open rows are the current queue
create table if not exists audit.identity_suggestion (
    suggestion_id bigint generated always as identity primary key,
    lms_user_id text not null,
    employee_key bigint not null,
    hris_employee_id text not null,         -- the employment the evidence was taken from
    unmatched_reason text not null,         -- why the rules left the account unmatched
    score numeric(7, 6) not null,           -- the match probability, 0..1
    match_weight numeric(9, 3) not null,    -- log2 odds: prior + the comparisons' weights
    rank integer not null,                  -- 1 = the account's best candidate
    evidence jsonb not null,                -- per comparison: level, weight, the values compared (no PII)
    status text not null default 'open',
    created_at timestamptz not null default now(),
    created_run_id text,
    scored_at timestamptz not null default now(),
    decided_by text,
    decided_at timestamptz,
    decision_reason text,
    override_id bigint references audit.identity_override (override_id),
    constraint identity_suggestion_pair_key unique (lms_user_id, employee_key),
    constraint identity_suggestion_status_check check (status in ('open', 'accepted', 'rejected')),
    constraint identity_suggestion_decision_check check (
        (status = 'open' and decided_at is null)
        or (status = 'rejected' and decided_at is not null and decided_by is not null)
        or (status = 'accepted' and decided_at is not null and decided_by is not null and override_id is not null)
    )
);

create index if not exists identity_suggestion_queue_idx on audit.identity_suggestion (status, score desc);

-- The suggestion stage keeps the queue current (it removes open rows no longer suggested); the steward
-- decides (status and who, when, why); the Data quality page's reader shows the queue.
insert into governance.role_privilege (role_name, statement_template, added_in) values
(
    'turnover_transformer',
    'grant select, insert, update, delete on audit.identity_suggestion to %1$I',
    '0040'
),
(
    'turnover_steward',
    'grant select, update (status, decided_by, decided_at, decision_reason, override_id)'
    || ' on audit.identity_suggestion to %1$I',
    '0040'
),
(
    'turnover_quality_reader',
    'grant select on audit.identity_suggestion to %1$I',
    '0040'
)
on conflict do nothing;
