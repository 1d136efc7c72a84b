-- The turnover model: registry of trained models, promotion history and published risk scores.

-- one row per trained model (a run trains two: HR features only and HR + LMS features)
create table if not exists audit.model_registry (
    model_version text primary key,
    training_run_id text not null,
    feature_set text not null,
    feature_set_version integer not null,
    algorithm text not null,
    horizon_days integer not null,
    features text[] not null,
    train_from_date date not null,
    train_to_date date not null,
    calibration_from_date date not null,
    calibration_to_date date not null,
    test_from_date date not null,
    test_to_date date not null,
    train_rows integer not null,
    calibration_rows integer not null,
    test_rows integer not null,
    test_positives integer not null,
    metrics jsonb not null,
    lift_over_hr_only jsonb,
    artifact_path text not null,
    artifact_sha256 text not null,
    report_path text,
    lineage jsonb not null,
    status text not null,
    promoted_at timestamptz,
    retired_at timestamptz,
    dag_id text,
    run_id text,
    task_id text,
    try_number integer,
    trained_at timestamptz not null,
    constraint model_registry_feature_set_check check (feature_set in ('hr_only', 'hr_lms')),
    constraint model_registry_status_check check (
        status in ('champion', 'challenger_not_promoted', 'retired', 'rolled_back', 'registered')
    )
);

create index if not exists model_registry_run_idx on audit.model_registry (training_run_id);

-- at most one champion at any time
create unique index if not exists model_registry_one_champion_idx on audit.model_registry (
    (true)
) where status = 'champion';

-- one row per promotion decision or rollback: what was compared, on which metric, and the outcome
create table if not exists audit.model_promotion (
    decision_id bigint generated always as identity primary key,
    decided_at timestamptz not null default now(),
    decision text not null,
    challenger_version text,
    champion_before text,
    champion_after text,
    metric text not null,
    challenger_value double precision,
    champion_value double precision,
    compared_on text,
    reason text not null,
    decided_by text,
    constraint model_promotion_decision_check check (
        decision in ('promoted', 'kept_champion', 'first_champion', 'forced', 'promotion_disabled', 'rolled_back')
    )
);

-- one row per employee_key per reference_date: the champion's voluntary-exit risk
create table if not exists mart.turnover_risk_score (
    employee_key bigint not null,
    reference_date date not null,
    feature_set_version integer not null,
    model_version text not null,
    score double precision not null,
    risk_rank integer not null,
    risk_band text not null,
    top_features jsonb not null,
    scored_at timestamptz not null,
    primary key (employee_key, reference_date),
    constraint turnover_risk_score_band_check check (risk_band in ('high', 'elevated', 'low'))
);
