-- a day's DAG run counts from the Airflow REST API; a row whose runs had all finished is not rewritten
insert into audit.airflow_dag_run_count as counted (
    run_day, dag_id, succeeded, failed, unfinished, first_counted_at, counted_at
) values (
    %(run_day)s, %(dag_id)s, %(succeeded)s, %(failed)s, %(unfinished)s, %(counted_at)s, %(counted_at)s
)
on conflict (run_day, dag_id) do update
    set
        succeeded = excluded.succeeded,
        failed = excluded.failed,
        unfinished = excluded.unfinished,
        counted_at = excluded.counted_at
    where
    counted.unfinished > 0
    and (counted.succeeded, counted.failed, counted.unfinished)
    is distinct from (excluded.succeeded, excluded.failed, excluded.unfinished)
