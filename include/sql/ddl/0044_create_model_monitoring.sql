-- Monitoring of the champion model (turnover_signals.model.monitoring): its performance on the reference dates
-- it scored once their labels have matured, and the drift of its scores and top features before they do.
-- The KPI page plots it, reading as the quality reader (as the Data quality page does).

-- one row per model_version per reference_date per metric
-- metric: roc_auc, pr_auc, top_decile_precision, calibration_error (performance, once labels mature), psi_score,
-- psi:<feature> (drift at the latest scored date); lower and upper: its bootstrap interval (null for a PSI);
-- threshold: the line whose crossing makes status 'alert' (model.monitoring; null: none); computed_at: when the
-- row's figures were last computed differently. `value` is the name agreed with the KPI page, which plots it
-- (a keyword, not a reserved one).
create table if not exists mart.model_monitoring (
    model_version text not null,
    reference_date date not null,
    metric text not null,
    value double precision not null,  -- noqa: RF04
    lower double precision,
    upper double precision,
    threshold double precision,
    status text not null,
    computed_at timestamptz not null,
    primary key (model_version, reference_date, metric),
    constraint model_monitoring_status_check check (status in ('ok', 'alert'))
);

comment on table mart.model_monitoring is
'the champion''s performance on matured reference dates and the drift of its inputs (model/monitoring.py)';

insert into governance.role_privilege (role_name, statement_template, added_in) values
('turnover_quality_reader', 'grant usage on schema mart to %1$I', '0044'),
('turnover_quality_reader', 'grant select on mart.model_monitoring to %1$I', '0044')
on conflict do nothing;
