-- original-sha256: 880d0b0fe21a705f0c42b5fc190e71390fe879ee392af538581f492be4b203b8
-- body-sha256: 26c6e2b1449ea7776ccc50b982e0bdfe857a0cc478aea5bc0185e76c1f159cb5
-- Revised after release: mart.training_set (views/) moved to include/sql/repeatable/ (one current definition,
-- applied after the numbered migrations); a warehouse that applied the original keeps it.

-- Point-in-time features and labels: the daily learning aggregate, features, labels, build audit.

-- one row per xAPI actor per activity day per day the statements were stored (voided excluded)
-- Keyed by actor, not employee, so an identity change never forces a rescan; keyed by stored
-- day too, so a feature row can be recomputed "as known at" its original cut-off.
create table if not exists mart.learner_daily_activity (
    learner_identifier text not null,
    activity_date date not null,
    stored_date date not null,
    events integer not null,
    enrolments integer not null,
    completions integer not null,
    score_sum numeric not null,
    score_count integer not null,
    learning_seconds bigint not null,
    course_ids text[] not null,
    enrolled_course_ids text[] not null,
    completed_course_ids text[] not null,
    primary key (learner_identifier, activity_date, stored_date)
);

create index if not exists learner_daily_activity_date_idx on mart.learner_daily_activity (activity_date);

-- one row per employee_key per reference_date per feature_set_version (active employees only)
create table if not exists mart.employee_features (
    employee_key bigint not null,
    reference_date date not null,
    feature_set_version integer not null,
    hris_employee_id text not null,
    enrolments_30d integer,
    enrolments_90d integer,
    enrolments_180d integer,
    completions_30d integer,
    completions_90d integer,
    completions_180d integer,
    completion_rate_30d numeric(7, 6),
    completion_rate_90d numeric(7, 6),
    completion_rate_180d numeric(7, 6),
    mean_score_30d numeric(7, 6),
    mean_score_90d numeric(7, 6),
    mean_score_180d numeric(7, 6),
    learning_minutes_30d numeric(12, 2),
    learning_minutes_90d numeric(12, 2),
    learning_minutes_180d numeric(12, 2),
    distinct_courses_30d integer,
    distinct_courses_90d integer,
    distinct_courses_180d integer,
    mandatory_courses_overdue integer,
    days_since_last_activity integer,
    engagement_trend numeric(12, 6),
    skill_tag_breadth_180d integer,
    difficulty_weighted_completions_180d integer,
    tenure_days integer,
    job_level integer,
    department text,
    location text,
    time_in_role_days integer,
    days_since_last_promotion integer,
    manager_changes_12m integer,
    manager_tenure_days integer,
    last_pay_change_pct numeric(9, 4),
    months_since_last_raise integer,
    is_pay_frozen boolean,
    performance_rating integer,
    team_size integer,
    team_leavers_90d integer,
    lms_cutoff_date date,
    built_at timestamptz not null,
    build_id text not null,
    lms_recomputed_at timestamptz,
    lms_recomputed_reason text,
    primary key (employee_key, reference_date, feature_set_version)
);

create index if not exists employee_features_date_idx on mart.employee_features (reference_date, feature_set_version);

-- one row per employee_key per reference_date per horizon: voluntary exit within the horizon
create table if not exists mart.turnover_label (
    employee_key bigint not null,
    reference_date date not null,
    horizon_days integer not null,
    hris_employee_id text not null,
    label boolean,
    exit_date date,
    exit_category text,
    is_censored boolean not null,
    label_status text not null,
    hr_known_through date,
    primary key (employee_key, reference_date, horizon_days),
    constraint turnover_label_status_check check (
        label_status in ('positive', 'negative', 'censored_involuntary', 'censored_other_exit', 'horizon_open')
    )
);

-- one row per feature build of a reference date: what was built, when, and from which data
create table if not exists audit.feature_build (
    build_id text not null,
    reference_date date not null,
    feature_set_version integer not null,
    build_kind text not null,
    feature_rows integer not null,
    active_headcount integer not null,
    lms_cutoff_date date,
    lms_stored_high_water timestamptz,
    hris_known_at_high_water timestamptz,
    validation_id text,
    dag_id text,
    run_id text,
    task_id text,
    try_number integer,
    built_at timestamptz not null,
    primary key (build_id, reference_date, feature_set_version),
    constraint feature_build_kind_check check (build_kind in ('first_build', 'restatement', 'void_recompute'))
);
