-- original-sha256: 127b745caa46bfbc571306eb16c7dfcd4615129a516d1bc5ce1ad70016e4840d
-- body-sha256: b9c30da6e24a421f2e277608b0ecad654548689f54678be749064aa276682588
-- Revised after release: mart.training_set and analytics.training_set (views/) moved to
-- include/sql/repeatable/ (one current definition, applied after the numbered migrations); a warehouse that
-- applied the original keeps it.

-- Features and labels (issue 6 audit): the exact LMS cut-off of a feature row, voids applied by what a
-- build saw rather than by clocks, rows of other feature set versions a void reached, and a label
-- status for employees whose exit on or before the reference date was reported after the build.

-- The exact stored time a row's learning columns count statements through (lms_cutoff_date is its
-- day); rows built before this migration take the stored high-water mark their build recorded.
alter table mart.employee_features add column if not exists lms_cutoff_at timestamptz;

-- The last void sequence (mart.feature_void_seen.seen_in_refresh) the row's learning columns
-- reflect: a void seen by a later refresh may still be counted, so the row is recomputed for it.
alter table mart.employee_features add column if not exists lms_voids_seen_through bigint not null default 0;

-- Rows of a feature set version other than the one being built cannot be recomputed (their SQL is
-- gone): when a void reaches one, this says since when it counts a voided statement.
alter table mart.employee_features add column if not exists voided_statement_after_build_at timestamptz;

update mart.employee_features as features
set lms_cutoff_at = build.lms_stored_high_water
from audit.feature_build as build
where
    features.build_id = build.build_id
    and features.reference_date = build.reference_date
    and features.feature_set_version = build.feature_set_version
    and build.build_kind in ('first_build', 'restatement');

-- one row per void a feature build has seen: which daily refresh saw it first (a sequence, since
-- refreshes take turns under the features lock) and when its feature rows were recomputed
create table if not exists mart.feature_void_seen (
    voided_statement_id text primary key,
    seen_in_refresh bigint not null,
    seen_at timestamptz not null,
    applied_at timestamptz
);

create index if not exists feature_void_seen_pending_idx on mart.feature_void_seen (seen_in_refresh)
where applied_at is null;

-- Voids already loaded were applied through the earlier watermark on void times: refresh 0.
insert into mart.feature_void_seen (voided_statement_id, seen_in_refresh, seen_at, applied_at)
select
    voided_statement_id,
    0 as seen_in_refresh,
    now() as seen_at,
    now() as applied_at
from audit.lms_void_applied
on conflict (voided_statement_id) do nothing;

-- A refresh selects what was stored since its watermark; the cut-off day of a build is read up to
-- the exact cut-off.
create index if not exists lms_activity_stored_idx on core.lms_activity (stored_at);

alter table mart.turnover_label drop constraint if exists turnover_label_status_check;
alter table mart.turnover_label add constraint turnover_label_status_check check (
    label_status in (
        'positive', 'negative', 'censored_involuntary', 'censored_other_exit', 'censored_exit_before_reference',
        'horizon_open'
    )
);
