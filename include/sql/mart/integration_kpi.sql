-- one row per kpi_date per kpi: the day's integration KPIs (turnover_signals/kpi/definitions.py)
-- Measured as of the end of the day (UTC; for today: now) from rows the pipeline recorded by then: rates over
-- the day, states from the newest row recorded before its end (features and scores: the newest date built by
-- then). A rerun for a past day measures the same thing, and a row whose value, target, status and source are
-- unchanged keeps its computed_at (returned is_changed false), so reruns neither change the table nor alert
-- again. Targets and their direction are bound as a JSON object:
-- {"<kpi name or name:member>": {"target": t, "at_most": bool}}.
insert into mart.integration_kpi (kpi_date, kpi, kpi_value, target_value, status, source, computed_at)
with measurement as (
    select
        %(kpi_date)s::date as kpi_date,
        %(as_of)s::timestamptz as as_of,
        %(day_start)s::timestamptz as day_start,
        %(hris_feeds)s::text[] as hris_feeds,
        %(feature_set_version)s::integer as feature_set_version,
        %(feature_columns)s::text[] as feature_columns,
        %(targets)s::jsonb as targets
),

latest_reconciliation as (
    select
        reconciliation.hris_headcount,
        reconciliation.canonical_headcount,
        reconciliation.active_corporate_match_rate,
        reconciliation.statements,
        reconciliation.statements_attributable
    from audit.identity_reconciliation as reconciliation
    inner join measurement on reconciliation.finished_at < measurement.as_of
    order by reconciliation.finished_at desc
    limit 1
),

open_exceptions as (
    -- as they stood at the end of the day: first seen before it, not resolved by then
    select count(*) as exceptions
    from audit.identity_exception as exception_row
    inner join measurement
        on
            exception_row.first_seen_at < measurement.as_of
            and (exception_row.status = 'open' or exception_row.resolved_at >= measurement.as_of)
),

hris_feeds as (
    select unnest(measurement.hris_feeds) as feed
    from measurement
),

good_hris_files as (
    -- a superseded file was good when it loaded: a correction replaced it later
    select
        manifest.feed,
        max(manifest.received_at) as last_received_at
    from audit.file_manifest as manifest
    inner join measurement on manifest.received_at < measurement.as_of
    where manifest.status in ('loaded', 'superseded')
    group by manifest.feed
),

lms_watermarks as (
    select
        batch.source,
        max(batch.watermark_after) filter (
            where batch.status = 'published' and batch.finished_at < measurement.as_of
        ) as watermark
    from audit.lms_extract_batch as batch
    cross join measurement
    group by batch.source
),

validation_runs as (
    select
        validation.suite_name,
        avg(validation.success::integer) as pass_rate
    from audit.validation_result as validation
    inner join measurement
        on validation.validated_at >= measurement.day_start and validation.validated_at < measurement.as_of
    group by validation.suite_name
),

rejected_statements as (
    select count(*) as rejected
    from raw.lms_statement_rejected as rejected
    inner join measurement
        on rejected.rejected_at >= measurement.day_start and rejected.rejected_at < measurement.as_of
),

published_statements as (
    select coalesce(sum(batch.statements_new), 0) as statements_new
    from audit.lms_extract_batch as batch
    inner join measurement
        on batch.finished_at >= measurement.day_start and batch.finished_at < measurement.as_of
    where batch.status = 'published'
),

recorded_outcomes as (
    -- what the DAGs' tasks recorded: gate verdicts, HRIS file fates, xAPI batches, identity runs
    select
        validation.dag_id,
        validation.success as is_success
    from audit.validation_result as validation
    inner join measurement
        on validation.validated_at >= measurement.day_start and validation.validated_at < measurement.as_of
    where validation.dag_id is not null
    union all
    select
        manifest.dag_id,
        manifest.status = 'loaded' as is_success
    from audit.file_manifest as manifest
    inner join measurement
        on manifest.received_at >= measurement.day_start and manifest.received_at < measurement.as_of
    where manifest.dag_id is not null and manifest.status in ('loaded', 'quarantined')
    union all
    select
        batch.dag_id,
        batch.status = 'published' as is_success
    from audit.lms_extract_batch as batch
    inner join measurement
        on batch.finished_at >= measurement.day_start and batch.finished_at < measurement.as_of
    where batch.dag_id is not null
    union all
    select
        'identity_resolution' as dag_id,
        reconciliation.success as is_success
    from audit.identity_reconciliation as reconciliation
    inner join measurement
        on reconciliation.finished_at >= measurement.day_start and reconciliation.finished_at < measurement.as_of
),

airflow_dag_runs as (
    -- the day's DAG run states from Airflow's REST API, where the KPI task could read them (kpi/dag_runs.py)
    select
        run_count.dag_id,
        run_count.succeeded,
        run_count.failed
    from audit.airflow_dag_run_count as run_count
    inner join measurement on run_count.run_day = measurement.kpi_date
),

pipeline_outcomes as (
    -- the runs that finished, where Airflow's run states were read (a DAG without finished runs has no rate);
    -- else what the DAG's tasks recorded
    select
        dag_id,
        succeeded::numeric / (succeeded + failed) as success_rate,
        'audit.airflow_dag_run_count (Airflow REST API: DAG run states)' as source
    from airflow_dag_runs
    where succeeded + failed > 0
    union all
    select
        dag_id,
        avg(is_success::integer) as success_rate,
        'audit.validation_result, audit.file_manifest, audit.lms_extract_batch, '
        || 'audit.identity_reconciliation' as source
    from recorded_outcomes
    where
        not exists (
            select from airflow_dag_runs
            where airflow_dag_runs.dag_id = recorded_outcomes.dag_id
        )
    group by dag_id
),

newest_feature_date as (
    -- the newest reference date built by the end of the day (a date is built once its cut-off passed)
    select max(features.reference_date) as reference_date
    from mart.employee_features as features
    inner join measurement
        on
            features.built_at < measurement.as_of
            and features.reference_date <= measurement.kpi_date
            and features.feature_set_version = measurement.feature_set_version
),

day_features as (
    select features.*
    from mart.employee_features as features
    inner join newest_feature_date on features.reference_date = newest_feature_date.reference_date
    inner join measurement
        on
            features.built_at < measurement.as_of
            and features.feature_set_version = measurement.feature_set_version
),

feature_nulls as (
    -- every feature column by name, without naming one here: the row as JSON, its null members counted
    select
        feature.key as feature,
        avg((feature.value = 'null'::jsonb)::integer) as null_rate
    from day_features
    cross join lateral jsonb_each(to_jsonb(day_features)) as feature
    inner join measurement on feature.key = any(measurement.feature_columns)
    group by feature.key
),

newest_scored_date as (
    select max(score.reference_date) as reference_date
    from mart.turnover_risk_score as score
    inner join measurement on score.scored_at < measurement.as_of and score.reference_date <= measurement.kpi_date
),

newest_scores as (
    select
        score.reference_date,
        score.feature_set_version,
        count(*) as employees
    from mart.turnover_risk_score as score
    inner join newest_scored_date on score.reference_date = newest_scored_date.reference_date
    inner join measurement on score.scored_at < measurement.as_of
    group by score.reference_date, score.feature_set_version
),

scored_headcount as (
    select
        newest_scores.employees as scored,
        count(features.employee_key) as featured
    from newest_scores
    cross join measurement
    left join mart.employee_features as features
        on
            newest_scores.reference_date = features.reference_date
            and newest_scores.feature_set_version = features.feature_set_version
            and measurement.as_of > features.built_at
    group by newest_scores.employees
),

measured as (
    -- kpi, measured value, source, and the target when it is computed here (scored_headcount)
    select
        'hris_headcount_reconciliation' as kpi,
        (
            select latest.canonical_headcount::double precision / nullif(latest.hris_headcount, 0)
            from latest_reconciliation as latest
        ) as measured_value,
        'audit.identity_reconciliation' as source,
        null::double precision as computed_target
    union all
    select
        'identity_match_rate' as kpi,
        (
            select latest.active_corporate_match_rate::double precision
            from latest_reconciliation as latest
        ) as measured_value,
        'audit.identity_reconciliation' as source,
        null as computed_target
    union all
    select
        'attributable_statement_share' as kpi,
        (
            select latest.statements_attributable::double precision / nullif(latest.statements, 0)
            from latest_reconciliation as latest
        ) as measured_value,
        'audit.identity_reconciliation' as source,
        null as computed_target
    union all
    select
        'open_identity_exceptions' as kpi,
        exceptions::double precision as measured_value,
        'audit.identity_exception' as source,
        null as computed_target
    from open_exceptions
    union all
    select
        'hris_file_age_hours:' || hris_feeds.feed as kpi,
        extract(epoch from measurement.as_of - good_hris_files.last_received_at)::double precision
        / 3600 as measured_value,
        'audit.file_manifest' as source,
        null as computed_target
    from hris_feeds
    cross join measurement
    left join good_hris_files on hris_feeds.feed = good_hris_files.feed
    union all
    select
        'lms_watermark_lag_hours:' || lms_watermarks.source as kpi,
        extract(epoch from measurement.as_of - lms_watermarks.watermark)::double precision / 3600 as measured_value,
        'audit.lms_extract_batch' as source,
        null as computed_target
    from lms_watermarks
    cross join measurement
    union all
    select
        'validation_pass_rate:' || suite_name as kpi,
        pass_rate::double precision as measured_value,
        'audit.validation_result' as source,
        null as computed_target
    from validation_runs
    union all
    select
        'rejected_statement_rate' as kpi,
        rejected_statements.rejected::double precision
        / nullif(rejected_statements.rejected + published_statements.statements_new, 0) as measured_value,
        'raw.lms_statement_rejected, audit.lms_extract_batch' as source,
        null as computed_target
    from rejected_statements
    cross join published_statements
    union all
    select
        'pipeline_success_rate:' || dag_id as kpi,
        success_rate::double precision as measured_value,
        source,
        null as computed_target
    from pipeline_outcomes
    union all
    select
        'feature_null_rate:' || feature as kpi,
        null_rate::double precision as measured_value,
        'mart.employee_features' as source,
        null as computed_target
    from feature_nulls
    union all
    select
        'scored_headcount' as kpi,
        scored_headcount.scored::double precision as measured_value,
        'mart.turnover_risk_score, mart.employee_features' as source,
        ceil(
            scored_headcount.featured * (measurement.targets -> 'scored_headcount' ->> 'target')::double precision
        ) as computed_target
    from measurement
    left join scored_headcount on true
),

targeted as (
    select
        measured.kpi,
        measured.source,
        round(measured.measured_value::numeric, 6)::double precision as kpi_value,
        case
            -- a share of the employees with features, computed above (none: nothing was scored)
            when measured.kpi = 'scored_headcount' then measured.computed_target
            else coalesce(
                (measurement.targets -> measured.kpi ->> 'target')::double precision,
                (measurement.targets -> split_part(measured.kpi, ':', 1) ->> 'target')::double precision
            )
        end as target_value,
        coalesce(
            (measurement.targets -> measured.kpi ->> 'at_most')::boolean,
            (measurement.targets -> split_part(measured.kpi, ':', 1) ->> 'at_most')::boolean
        ) as is_at_most
    from measured
    cross join measurement
),

final as (
    select
        measurement.kpi_date,
        targeted.kpi,
        targeted.kpi_value,
        targeted.target_value,
        case
            when targeted.kpi_value is null then 'no_data'
            when targeted.target_value is null then 'ok'
            when targeted.is_at_most and targeted.kpi_value > targeted.target_value then 'alert'
            when not targeted.is_at_most and targeted.kpi_value < targeted.target_value then 'alert'
            else 'ok'
        end as status,
        targeted.source,
        now() as computed_at
    from targeted
    cross join measurement
)

select * from final
on conflict (kpi_date, kpi) do update
    set
        kpi_value = excluded.kpi_value,
        target_value = excluded.target_value,
        status = excluded.status,
        source = excluded.source,
        computed_at = case
            when
                (
                    integration_kpi.kpi_value, integration_kpi.target_value, integration_kpi.status,
                    integration_kpi.source
                )
                is not distinct from (excluded.kpi_value, excluded.target_value, excluded.status, excluded.source)
                then integration_kpi.computed_at
            else excluded.computed_at
        end
returning kpi, kpi_value, target_value, status, computed_at = now() as is_changed
