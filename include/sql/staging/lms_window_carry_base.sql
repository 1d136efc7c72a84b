-- one row per target (employee_key, reference_date) of the temp table feature_targets whose row on the
-- day before exists (this feature set version), was built from the same inputs (feature_lms_inputs: actor
-- links, catalog) and was not made stale by a void in another version: the rows that may be carried
-- forward (include/sql/staging/lms_window_carried_forward.sql decides). Parameter: feature_set_version.
with final as (
    select
        targets.employee_key,
        targets.reference_date,
        previous.lms_cutoff_at,
        previous.lms_voids_seen_through,
        previous.enrolments_30d,
        previous.enrolments_90d,
        previous.enrolments_180d,
        previous.completions_30d,
        previous.completions_90d,
        previous.completions_180d,
        previous.completion_rate_30d,
        previous.completion_rate_90d,
        previous.completion_rate_180d,
        previous.mean_score_30d,
        previous.mean_score_90d,
        previous.mean_score_180d,
        previous.learning_minutes_30d,
        previous.learning_minutes_90d,
        previous.learning_minutes_180d,
        previous.distinct_courses_30d,
        previous.distinct_courses_90d,
        previous.distinct_courses_180d,
        previous.mandatory_courses_overdue,
        previous.days_since_last_activity,
        previous.engagement_trend,
        previous.skill_tag_breadth_180d,
        previous.difficulty_weighted_completions_180d
    from feature_targets as targets
    inner join feature_lms_inputs as inputs on targets.employee_key = inputs.employee_key
    inner join mart.employee_features as previous
        on
            targets.employee_key = previous.employee_key
            and targets.reference_date - 1 = previous.reference_date
            and previous.feature_set_version = %(feature_set_version)s
            and inputs.lms_inputs_md5 = previous.lms_inputs_md5
    where
        -- the days before the targets' dates (read through the date index, not every row of the table)
        previous.reference_date in (select distinct feature_targets.reference_date - 1 from feature_targets)
        and previous.lms_cutoff_at is not null
        and previous.voided_statement_after_build_at is null
)

select * from final
