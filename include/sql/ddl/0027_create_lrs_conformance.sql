-- original-sha256: 96cedf42110195de2702cc85e0921fd4cad6e2f36d01a99cc0eba915dc7d6765
-- body-sha256: 62cc076e5079aaf7a8b8ed7711abb68c1d8cbebf81fd83fb38ea0673a782de41
-- Revised after release: governance.apply_role_privileges() (grants/) moved to include/sql/repeatable/ (one
-- current definition, applied after the numbered migrations); a warehouse that applied the original keeps it.

-- What each LRS actually does, learned by the conformance probe (turnover_signals.lms.conformance) at the
-- first use of a connection and on demand, and the extraction strategy chosen from it. One row per probe:
-- the newest row of a source is the one in force; older rows are the history an auditor reads.
create table if not exists audit.lrs_conformance (
    probe_id bigint generated always as identity primary key,
    source text not null,                   -- xapi:<connection id>, as audit.extract_watermark
    endpoint text not null,                 -- the statements URL probed (no credentials)
    probed_at timestamptz not null default now(),
    since_field text not null,              -- what `since` filters on: stored (xAPI 1.0.3), timestamp, unknown
    page_cap integer,                       -- the most statements a page returned when more were asked for
    sends_version_header boolean not null,
    sends_consistent_through boolean not null,
    voided_hidden boolean,                  -- voided statements left out of listings (null: no void seen)
    voided_query_supported boolean,         -- voidedStatementId returns the voided statement
    more_form text not null,                -- root_relative, endpoint_relative, absolute, absent, none
    strategy text not null,                 -- stored_overlap or timestamp_lookback
    evidence jsonb not null,                -- the requests made and what each showed, for a reader
    constraint lrs_conformance_since_field_check check (since_field in ('stored', 'timestamp', 'unknown')),
    constraint lrs_conformance_strategy_check check (strategy in ('stored_overlap', 'timestamp_lookback'))
);

create index if not exists lrs_conformance_source_idx on audit.lrs_conformance (source, probe_id desc);

-- Each batch says how it was extracted and what it found late: new statements whose filtered time (stored,
-- or timestamp on an LRS that filters since on it) was at or before the watermark the batch started from,
-- so a plain `since = watermark` query would never have returned them.
alter table audit.lms_extract_batch add column if not exists strategy text;
alter table audit.lms_extract_batch add column if not exists extraction_kind text;  -- incremental or sweep
alter table audit.lms_extract_batch add column if not exists statements_late integer;
-- the longest stored - timestamp among the batch's accepted statements: how far back a timestamp look-back
-- must reach
alter table audit.lms_extract_batch add column if not exists max_lateness_seconds bigint;

-- Privileges added after 0019 are rows here, not another copy of governance.apply_role_privileges(): it
-- applies its list, then these rows.
create table if not exists governance.role_privilege (
    role_name text not null,
    statement_template text not null,       -- a format() template: %1$I is the role
    added_in text not null,                 -- the migration that added it
    primary key (role_name, statement_template)
);

insert into governance.role_privilege (role_name, statement_template, added_in) values
(
    'turnover_quality_reader',
    'grant select on audit.lms_extract_batch, audit.lrs_conformance to %1$I',
    '0027'
)
on conflict do nothing;
