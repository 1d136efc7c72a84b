-- original-sha256: 523d265536e568ea29dd0a802af52b586e0b5eb676c9e76294501f1a9aa176db
-- body-sha256: ea21fee1602b850b296c8f51cef216c2b8e2cad359affd1e9d2eb5ba03df4fa0
-- Revised after release: mart.training_set and analytics.training_set (views/) moved to
-- include/sql/repeatable/ (one current definition, applied after the numbered migrations); a warehouse that
-- applied the original keeps it.

-- Point in time by construction (issue 16): a feature row is a pure function of what was known at its
-- reference date's cut-off, end of the date + features.as_of_grace, whenever it is built. Nothing later
-- changes it, so the machinery that kept "as known at build time" rows consistent goes: the void
-- recompute's sequence and flags, the carry-forward fingerprint, the exact per-build LMS cut-off.

-- The training set no longer leaves out rows flagged by a later void: no row is ever flagged.
drop view if exists analytics.training_set;
drop view if exists mart.training_set;

alter table mart.employee_features drop column if exists lms_voids_seen_through;
alter table mart.employee_features drop column if exists voided_statement_after_build_at;
alter table mart.employee_features drop column if exists lms_recomputed_at;
alter table mart.employee_features drop column if exists lms_recomputed_reason;
alter table mart.employee_features drop column if exists lms_inputs_md5;
alter table mart.employee_features drop column if exists lms_cutoff_at;
-- the one cut-off of the row's reference date: facts known after it do not exist for the row
alter table mart.employee_features add column if not exists cutoff_at timestamptz;

alter table audit.feature_build add column if not exists cutoff_at timestamptz;
alter table audit.feature_build drop constraint if exists feature_build_kind_check;
alter table audit.feature_build add constraint feature_build_kind_check check (
    build_kind in ('as_of', 'first_build', 'restatement', 'void_recompute')
);

drop table if exists mart.feature_void_seen;
delete from audit.extract_watermark
where source = 'features:learner_daily_activity:stored';

-- one row per xAPI actor per activity day (UTC) per first reference date whose cut-off knows the
-- statements per first reference date whose cut-off knows their void (null: not voided); a reference
-- date D counts the rows with activity_date <= D, visible_from_date <= D and no hidden_from_date <= D
drop table if exists mart.learner_daily_activity;
create table mart.learner_daily_activity (
    learner_identifier text not null,
    activity_date date not null,
    visible_from_date date not null,
    hidden_from_date date,
    events integer not null,
    enrolments integer not null,
    completions integer not null,
    score_sum numeric not null,
    score_count integer not null,
    learning_seconds bigint not null,
    course_ids text[] not null,
    enrolled_course_ids text[] not null,
    completed_course_ids text[] not null,
    constraint learner_daily_activity_grain unique nulls not distinct (
        learner_identifier, activity_date, visible_from_date, hidden_from_date
    )
);

create index if not exists learner_daily_activity_date_idx on mart.learner_daily_activity (activity_date);

-- one row: the knowledge rules the aggregate was built with (a change rebuilds it) and how far it has
-- read the LMS tables (by load time: what was published since is refreshed, whatever its stored time)
create table if not exists mart.learner_daily_activity_state (
    singleton boolean primary key default true check (singleton),
    as_of_grace interval not null,
    import_cutover timestamptz,
    import_knowledge_lag interval not null,
    loaded_watermark timestamptz
);

-- "As known now" rows, built only on an explicit request for analysis; never mixed with the as-of rows
create table if not exists mart.employee_features_restated (
    like mart.employee_features including defaults,
    primary key (employee_key, reference_date, feature_set_version)
);

-- one row per HRIS file loaded (or superseded since): when what it says became known
-- (include/sql/core/hris_file_knowledge.sql)
create table if not exists core.hris_file_knowledge (
    file_name text not null,
    sha256 text not null,
    feed text not null,
    file_date date not null,
    status text not null,
    is_correction boolean not null,
    known_at timestamptz not null,
    primary key (file_name, sha256)
);

-- one row per employee_id per validity interval per version of the history known before a correction
-- touched the employee: the history of those employees as it was known from known_from (null: always)
-- until known_until
create table if not exists core.employee_history_revision (
    like core.employee_history,
    known_from timestamptz,
    known_until timestamptz not null
);

create index if not exists employee_history_revision_employee_idx
on core.employee_history_revision (employee_id, known_until);

-- one row per course per catalog version: the catalog as it was known from known_from (null: the first
-- catalog the warehouse loaded, assumed for every earlier date) until known_until (null: current)
create table if not exists core.course_catalog_version (
    like core.course_catalog,
    known_from timestamptz,
    known_until timestamptz
);

create index if not exists course_catalog_version_course_idx on core.course_catalog_version (course_id);

insert into core.course_catalog_version (
    course_id, title, difficulty, is_mandatory, due_within_days, skill_tags, catalog_sha256
)
select
    course_id,
    title,
    difficulty,
    is_mandatory,
    due_within_days,
    skill_tags,
    catalog_sha256
from core.course_catalog
where not exists (select from core.course_catalog_version);

-- Identity links by when they became possible: an LMS account's identifiers as first shown by the
-- directory, a steward's decision when taken; null: known with its other facts (and rows built before this
-- migration).
alter table core.identity_lms_account add column if not exists identifiers_known_at timestamptz;
alter table core.lms_account_match add column if not exists known_at timestamptz;
alter table core.employee_identity add column if not exists known_at timestamptz;

-- when each void was published (as core.lms_activity.loaded_at): a refresh takes in what was published
-- since the last one, whatever the voiding statement's stored time
alter table audit.lms_void_applied add column if not exists loaded_at timestamptz;
alter table audit.lms_void_applied alter column loaded_at set default now();
create index if not exists lms_void_applied_loaded_idx on audit.lms_void_applied (loaded_at);
