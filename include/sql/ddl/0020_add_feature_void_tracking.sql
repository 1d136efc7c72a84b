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

-- one row per employee_key per reference_date per feature_set_version per horizon with a known label;
-- rows counting a statement voided after they were built (older versions) are left out
create or replace view mart.training_set as
select
    features.employee_key,
    features.reference_date,
    features.feature_set_version,
    features.hris_employee_id,
    features.enrolments_30d,
    features.enrolments_90d,
    features.enrolments_180d,
    features.completions_30d,
    features.completions_90d,
    features.completions_180d,
    features.completion_rate_30d,
    features.completion_rate_90d,
    features.completion_rate_180d,
    features.mean_score_30d,
    features.mean_score_90d,
    features.mean_score_180d,
    features.learning_minutes_30d,
    features.learning_minutes_90d,
    features.learning_minutes_180d,
    features.distinct_courses_30d,
    features.distinct_courses_90d,
    features.distinct_courses_180d,
    features.mandatory_courses_overdue,
    features.days_since_last_activity,
    features.engagement_trend,
    features.skill_tag_breadth_180d,
    features.difficulty_weighted_completions_180d,
    features.tenure_days,
    features.job_level,
    features.department,
    features.location,
    features.time_in_role_days,
    features.days_since_last_promotion,
    features.manager_changes_12m,
    features.manager_tenure_days,
    features.last_pay_change_pct,
    features.months_since_last_raise,
    features.is_pay_frozen,
    features.performance_rating,
    features.team_size,
    features.team_leavers_90d,
    features.lms_cutoff_date,
    features.built_at,
    features.build_id,
    features.lms_recomputed_at,
    features.lms_recomputed_reason,
    label.horizon_days,
    label.label,
    label.exit_date,
    label.exit_category,
    features.lms_cutoff_at
from mart.employee_features as features
inner join mart.turnover_label as label
    on features.employee_key = label.employee_key and features.reference_date = label.reference_date
where label.label is not null and features.voided_statement_after_build_at is null;

-- the same for analysts: the pseudonymous training set leaves the flagged rows out as well
create or replace view analytics.training_set as
select
    features.person_pseudonym,
    features.reference_date,
    features.feature_set_version,
    features.enrolments_30d,
    features.enrolments_90d,
    features.enrolments_180d,
    features.completions_30d,
    features.completions_90d,
    features.completions_180d,
    features.completion_rate_30d,
    features.completion_rate_90d,
    features.completion_rate_180d,
    features.mean_score_30d,
    features.mean_score_90d,
    features.mean_score_180d,
    features.learning_minutes_30d,
    features.learning_minutes_90d,
    features.learning_minutes_180d,
    features.distinct_courses_30d,
    features.distinct_courses_90d,
    features.distinct_courses_180d,
    features.mandatory_courses_overdue,
    features.days_since_last_activity,
    features.engagement_trend,
    features.skill_tag_breadth_180d,
    features.difficulty_weighted_completions_180d,
    features.tenure_days,
    features.job_level,
    features.department,
    features.location,
    features.time_in_role_days,
    features.days_since_last_promotion,
    features.manager_changes_12m,
    features.manager_tenure_days,
    features.last_pay_change_pct,
    features.months_since_last_raise,
    features.is_pay_frozen,
    features.performance_rating,
    features.team_size,
    features.team_leavers_90d,
    features.salary_band,
    features.salary_currency,
    features.lms_cutoff_date,
    label.horizon_days,
    label.label,
    label.exit_category
from analytics.employee_features as features
inner join analytics.turnover_label as label
    on
        features.person_pseudonym = label.person_pseudonym
        and features.reference_date = label.reference_date
where
    label.label is not null
    and not exists (
        select
        from mart.employee_features as flagged
        inner join governance.person_pseudonym as pseudonym on flagged.employee_key = pseudonym.employee_key
        where
            pseudonym.person_pseudonym = features.person_pseudonym
            and flagged.reference_date = features.reference_date
            and flagged.feature_set_version = features.feature_set_version
            and flagged.voided_statement_after_build_at is not null
    );

-- the new table gets its grants (default privileges cover it too; this keeps the one list authoritative)
select governance.apply_role_privileges();
