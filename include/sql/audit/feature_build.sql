-- one row per build_id per reference_date published
-- What a feature build published for a date and what the warehouse held when it ran (the high-water marks
-- are for the audit only: no feature row depends on them).
insert into audit.feature_build (
    build_id,
    reference_date,
    feature_set_version,
    build_kind,
    feature_rows,
    active_headcount,
    lms_cutoff_date,
    cutoff_at,
    lms_stored_high_water,
    hris_known_at_high_water,
    validation_id,
    dag_id,
    run_id,
    task_id,
    try_number,
    built_at
) values (
    %(build_id)s,
    %(reference_date)s,
    %(feature_set_version)s,
    %(build_kind)s,
    %(feature_rows)s,
    %(active_headcount)s,
    %(lms_cutoff_date)s,
    %(cutoff_at)s,
    %(lms_stored_high_water)s,
    %(hris_known_at_high_water)s,
    %(validation_id)s,
    %(dag_id)s,
    %(run_id)s,
    %(task_id)s,
    %(try_number)s,
    now()
)
