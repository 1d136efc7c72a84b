-- one row per kpi_date per kpi: the integration KPIs of a day (turnover_signals/kpi/definitions.py), measured
-- as of the end of that day (UTC) by turnover_features.record_integration_kpis; the KPI page reads them
create table if not exists mart.integration_kpi (
    kpi_date date not null,
    kpi text not null,                      -- <name> or <name>:<member> (a suite, DAG, feed, source, feature)
    kpi_value double precision,             -- null: nothing was recorded to measure (status no_data)
    target_value double precision,          -- null: no target (status ok whatever the value)
    status text not null,
    source text not null,                   -- the tables the value was read from
    computed_at timestamptz not null,       -- when the row last changed: a rerun that measures the same keeps it
    primary key (kpi_date, kpi),
    constraint integration_kpi_status_check check (status in ('ok', 'alert', 'no_data'))
);

create index if not exists integration_kpi_kpi_idx on mart.integration_kpi (kpi, kpi_date);

-- The KPI page reads as the read-only quality reader (the transformer that writes it has mart already).
insert into governance.role_privilege (role_name, statement_template, added_in) values
('turnover_quality_reader', 'grant usage on schema mart to %1$I', '0042'),
('turnover_quality_reader', 'grant select on mart.integration_kpi to %1$I', '0042')
on conflict do nothing;
