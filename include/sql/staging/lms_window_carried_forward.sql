-- one row per target (employee_key, reference_date) of the temp table feature_targets whose learning
-- columns are those of its row on the day before, carried forward, because nothing they count can differ:
-- - that row exists (same feature set version), was built from the same inputs (feature_lms_inputs:
--   actor links, catalog) and no void made it stale;
-- - none of the employee's actors has activity on a day that enters or leaves a window between the two
--   dates (the date itself; 30, 90, 180 days back; 120 back for the trend's prior window; 365 back for
--   the look-back) or on the day whose mandatory enrolments fall due on the date (1 + due days back);
-- - none of them has a statement the LRS exposed after that row's cut-off (stored after it, or up to
--   the refresh overlap before it, as the daily refresh assumes) or one voided since that row's mark.
-- The time since the last activity then grows by one day; every other learning column stays.
-- Reads the temp table lms_window_carry_base (the rows that may be carried); parameters: changed_since (the
-- earliest of their cut-offs less the refresh overlap) and voids_seen_after (the lowest of their void marks).
with base as (
    select * from lms_window_carry_base
),

base_dates as (
    select distinct reference_date from base
),

moving_days as (
    select
        base_dates.reference_date,
        base_dates.reference_date - shift.days as activity_date
    from base_dates
    cross join unnest(array[0, 30, 90, 120, 180, 365]) as shift (days)
    union
    select
        base_dates.reference_date,
        base_dates.reference_date - 1 - course.due_within_days as activity_date
    from base_dates
    cross join core.course_catalog as course
    where course.is_mandatory and course.due_within_days is not null
),

moved_learners as (
    -- day by day through the date index (a handful of days; a hash join would read the whole table)
    select distinct
        moving_days.reference_date,
        daily.learner_identifier
    from moving_days
    cross join lateral (
        select on_day.learner_identifier
        from mart.learner_daily_activity as on_day
        where on_day.activity_date = moving_days.activity_date
        -- offset 0 keeps the subquery apart, so it runs per day (flattened, it became a hash join)
        offset 0  -- noqa: AM09
    ) as daily
),

changed_learners as (
    select activity.learner_identifier
    from core.lms_activity as activity
    where activity.stored_at > %(changed_since)s::timestamptz
    union
    select activity.learner_identifier
    from mart.feature_void_seen as seen
    inner join core.lms_activity as activity on seen.voided_statement_id = activity.statement_id
    where seen.seen_in_refresh > %(voids_seen_after)s::bigint
),

recomputed as (
    select distinct
        base.employee_key,
        base.reference_date
    from base
    inner join core.employee_identity as identity_row
        on base.employee_key = identity_row.employee_key and identity_row.identifier_type = 'xapi_actor'
    left join moved_learners
        on
            base.reference_date = moved_learners.reference_date
            and identity_row.identifier_value = moved_learners.learner_identifier
    left join changed_learners on identity_row.identifier_value = changed_learners.learner_identifier
    where moved_learners.learner_identifier is not null or changed_learners.learner_identifier is not null
),

final as (
    select
        base.employee_key,
        base.reference_date,
        base.enrolments_30d,
        base.enrolments_90d,
        base.enrolments_180d,
        base.completions_30d,
        base.completions_90d,
        base.completions_180d,
        base.completion_rate_30d,
        base.completion_rate_90d,
        base.completion_rate_180d,
        base.mean_score_30d,
        base.mean_score_90d,
        base.mean_score_180d,
        base.learning_minutes_30d,
        base.learning_minutes_90d,
        base.learning_minutes_180d,
        base.distinct_courses_30d,
        base.distinct_courses_90d,
        base.distinct_courses_180d,
        base.mandatory_courses_overdue,
        base.engagement_trend,
        base.skill_tag_breadth_180d,
        base.difficulty_weighted_completions_180d,
        base.days_since_last_activity + 1 as days_since_last_activity
    from base
    left join recomputed
        on base.employee_key = recomputed.employee_key and base.reference_date = recomputed.reference_date
    where recomputed.employee_key is null
)

select * from final
