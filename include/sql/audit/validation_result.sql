-- one row per validation of a data asset by a Great Expectations suite
-- Written in the caller's transaction, so a gated publish and its validation commit together. Samples of
-- PII columns in the results are masked (quality/gate.py); the retention purge later removes old samples.
insert into audit.validation_result (
    validation_id,
    suite_name,
    suite_version,
    data_asset,
    batch_identifier,
    success,
    evaluated_expectations,
    failed_expectation_count,
    statistics,
    failed_expectations,
    results,
    dag_id,
    run_id,
    task_id,
    map_index,
    try_number,
    data_docs_path,
    validated_at
) values (
    %(validation_id)s,
    %(suite_name)s,
    %(suite_version)s,
    %(data_asset)s,
    %(batch_identifier)s,
    %(success)s,
    %(evaluated)s,
    %(failed_count)s,
    %(statistics)s,
    %(failed)s,
    %(results)s,
    %(dag_id)s,
    %(run_id)s,
    %(task_id)s,
    %(map_index)s,
    %(try_number)s,
    %(data_docs_path)s,
    %(validated_at)s
)
