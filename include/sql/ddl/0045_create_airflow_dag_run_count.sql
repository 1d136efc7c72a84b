-- The states of a day's DAG runs, as Airflow's public REST API reported them to the KPI task
-- (turnover_signals.kpi.dag_runs): the source of the pipeline success rate. Tasks have no metadata-DB
-- access, so the counts are copied here when the day is measured. A day's row is kept current while some of
-- its runs are unfinished and frozen once none is: clearing a failed run later does not rewrite history, and
-- rerunning the KPI task reads the frozen counts instead of asking the API again.

-- one row per run_day per dag_id: the runs whose run_after falls on run_day (UTC)
create table if not exists audit.airflow_dag_run_count (
    run_day date not null,
    dag_id text not null,
    succeeded integer not null,
    failed integer not null,
    unfinished integer not null,            -- queued or running when counted: the row may still change
    first_counted_at timestamptz not null,
    counted_at timestamptz not null,        -- the count the row holds; frozen once unfinished = 0
    primary key (run_day, dag_id),
    constraint airflow_dag_run_count_nonnegative_check check (succeeded >= 0 and failed >= 0 and unfinished >= 0)
);

comment on table audit.airflow_dag_run_count is
'DAG run states per day from the Airflow REST API, frozen once the day''s runs finished (kpi/dag_runs.py)';

-- the KPI task keeps a day's row current until its runs finish
insert into governance.role_privilege (role_name, statement_template, added_in) values
('turnover_transformer', 'grant update on audit.airflow_dag_run_count to %1$I', '0045')
on conflict do nothing;
