-- one row per source that fed one row of mart.employee_features, with its validation result
-- Answers "where does this number come from?" for (%(employee_key)s, %(reference_date)s,
-- %(feature_set_version)s): the feature build that wrote the row, the identity run it used, the HRIS
-- files behind the employee's history and pay as known at the row's cut-off (a file a correction
-- superseded after the cut-off is the one that fed it), and the LMS batches that delivered the
-- statements in its windows (those stored by the cut-off and not voided by then).
with feature_row as (
    select
        employee_key,
        reference_date,
        feature_set_version,
        hris_employee_id,
        cutoff_at,
        built_at,
        build_id
    from mart.employee_features
    where
        employee_key = %(employee_key)s::bigint
        and reference_date = %(reference_date)s::date
        and feature_set_version = %(feature_set_version)s::integer
),

builds as (
    select
        'feature_build' as source_kind,
        build.build_kind || ' ' || build.build_id as source_name,
        null as source_sha256,
        build.feature_rows || ' rows for ' || build.reference_date as detail,
        build.validation_id
    from audit.feature_build as build
    inner join feature_row
        on
            build.reference_date = feature_row.reference_date
            and build.feature_set_version = feature_row.feature_set_version
            and build.build_id = feature_row.build_id
),

identity_runs as (
    select
        'identity_run' as source_kind,
        reconciliation.run_id as source_name,
        null as source_sha256,
        reconciliation.mode || ', rule v' || reconciliation.rule_version as detail,
        reconciliation.validation_id
    from feature_row
    cross join lateral (
        select
            successful_run.run_id,
            successful_run.mode,
            successful_run.rule_version,
            successful_run.validation_id
        from audit.identity_reconciliation as successful_run
        where successful_run.success and successful_run.finished_at <= feature_row.built_at
        order by successful_run.finished_at desc
        limit 1
    ) as reconciliation
),

hris_sources as (
    -- the version of the employee's history known at the cut-off: today's, unless a correction became
    -- known after it (then the version kept in core.employee_history_revision)
    select history.source_sha256
    from core.employee_history as history
    inner join feature_row
        on
            history.employee_id = feature_row.hris_employee_id
            and history.valid_from <= feature_row.reference_date
            and history.known_at <= feature_row.cutoff_at
    where
        not exists (
            select from core.employee_history_revision as revision
            where revision.employee_id = history.employee_id and revision.known_until > feature_row.cutoff_at
        )
    union
    select revision.source_sha256
    from core.employee_history_revision as revision
    inner join feature_row
        on
            revision.employee_id = feature_row.hris_employee_id
            and revision.valid_from <= feature_row.reference_date
            and revision.known_at <= feature_row.cutoff_at
            and (revision.known_from is null or revision.known_from <= feature_row.cutoff_at)
            and revision.known_until > feature_row.cutoff_at
    union
    select compensation.source_sha256
    from core.compensation_event_version as compensation
    inner join feature_row
        on
            compensation.employee_id = feature_row.hris_employee_id
            and compensation.effective_date <= feature_row.reference_date
            and compensation.known_from <= feature_row.cutoff_at
            and (compensation.known_until is null or compensation.known_until > feature_row.cutoff_at)
),

hris_files as (
    select
        'hris_file' as source_kind,
        manifest.file_name as source_name,
        manifest.sha256 as source_sha256,
        manifest.feed || ' ' || manifest.file_date || ', ' || manifest.status
        || case
            when manifest.status = 'superseded'
                then ' after this row''s cut-off by a correction (' || left(manifest.superseded_by_sha256, 12) || ')'
            else ''
        end as detail,
        manifest.validation_id
    from hris_sources
    inner join audit.file_manifest as manifest on hris_sources.source_sha256 = manifest.sha256
),

learner_windows as (
    select
        identity_row.identifier_value as learner_identifier,
        feature_row.cutoff_at,
        greatest(identity_row.valid_from, feature_row.reference_date - 364) as window_from,
        least(coalesce(identity_row.valid_to, 'infinity'), feature_row.reference_date + 1) as window_to
    from feature_row
    inner join core.employee_identity as identity_row
        on
            feature_row.employee_key = identity_row.employee_key
            and identity_row.identifier_type = 'xapi_actor'
),

lms_statements as (
    select
        statement.batch_id,
        count(*) as statements
    from learner_windows
    inner join core.lms_activity as activity
        on
            learner_windows.learner_identifier = activity.learner_identifier
            and activity.occurred_at >= learner_windows.window_from::timestamp at time zone 'UTC'
            and activity.occurred_at < learner_windows.window_to::timestamp at time zone 'UTC'
            and learner_windows.cutoff_at >= activity.stored_at
    inner join raw.lms_statement as statement on activity.statement_id = statement.statement_id
    left join audit.lms_void_applied as void on activity.statement_id = void.voided_statement_id
    where void.void_stored_at is null or void.void_stored_at > learner_windows.cutoff_at
    group by statement.batch_id
),

lms_batches as (
    select
        'lms_batch' as source_kind,
        lms_statements.batch_id as source_name,
        null as source_sha256,
        lms_statements.statements || ' statement(s); ' || coalesce(batch.source, '?') || ' stored '
        || coalesce(batch.watermark_before::text, 'start') || ' .. ' || coalesce(batch.watermark_after::text, '?')
            as detail,
        batch.validation_id
    from lms_statements
    left join audit.lms_extract_batch as batch on lms_statements.batch_id = batch.batch_id
),

sources as (
    select * from builds
    union all
    select * from identity_runs
    union all
    select * from hris_files
    union all
    select * from lms_batches
),

final as (
    select
        sources.source_kind,
        sources.source_name,
        sources.source_sha256,
        sources.detail,
        sources.validation_id,
        validation.suite_name,
        validation.success as validation_success,
        validation.data_docs_path
    from sources
    left join audit.validation_result as validation on sources.validation_id = validation.validation_id
)

select * from final
order by source_kind, source_name
