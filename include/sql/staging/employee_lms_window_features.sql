-- one row per target (employee_key, reference_date): learning features over windows ending at the date
-- Reads the temp table feature_targets (employee_key, reference_date, cutoff_at). Activity counts only
-- through an actor the employee owned on the activity day by a link known by the cut-off
-- (core.employee_identity), only on or before the reference date, and only as the date's cut-off knew
-- it: statements known by then and not voided by then (mart.learner_daily_activity dates both), and the
-- course catalog version known then (core.course_catalog_version). With
-- %(as_known_now)s (an explicitly requested restatement) it counts what is known now instead.
with targets as (
    select
        employee_key,
        reference_date,
        cutoff_at
    from feature_targets
),

learner_links as (
    -- a year back: the longest window is 180 days; overdue mandatory courses look back further
    select
        targets.employee_key,
        targets.reference_date,
        identity_row.identifier_value as learner_identifier,
        greatest(identity_row.valid_from, targets.reference_date - 364) as link_from,
        least(coalesce(identity_row.valid_to, 'infinity'), targets.reference_date + 1) as link_to
    from targets
    inner join core.employee_identity as identity_row
        on
            targets.employee_key = identity_row.employee_key
            and identity_row.identifier_type = 'xapi_actor'
            and targets.reference_date >= identity_row.valid_from
            and (identity_row.valid_to is null or identity_row.valid_to > targets.reference_date - 364)
            and (identity_row.known_at is null or targets.cutoff_at >= identity_row.known_at)
),

catalog as (
    -- the course catalog as known at each date's cut-off (difficulty, mandatory courses, skill tags)
    select
        reference_dates.reference_date,
        catalog_version.course_id,
        catalog_version.difficulty,
        catalog_version.is_mandatory,
        catalog_version.due_within_days,
        catalog_version.skill_tags
    from (select distinct
        reference_date,
        cutoff_at
    from targets) as reference_dates
    inner join core.course_catalog_version as catalog_version
        on
            (catalog_version.known_from is null or reference_dates.cutoff_at >= catalog_version.known_from)
            and (catalog_version.known_until is null or reference_dates.cutoff_at < catalog_version.known_until)
),

daily_activity as (
    select *
    from mart.learner_daily_activity
    -- the look-back of the earliest date only (a daily run reads one year, not all history)
    where activity_date >= (select min(targets.reference_date) - 364 from targets)
),

daily as (
    select
        learner_links.employee_key,
        learner_links.reference_date,
        daily_activity.activity_date,
        daily_activity.events,
        daily_activity.enrolments,
        daily_activity.completions,
        daily_activity.score_sum,
        daily_activity.score_count,
        daily_activity.learning_seconds,
        daily_activity.course_ids,
        daily_activity.enrolled_course_ids,
        daily_activity.completed_course_ids
    from learner_links
    inner join daily_activity
        on
            learner_links.learner_identifier = daily_activity.learner_identifier
            and learner_links.link_from <= daily_activity.activity_date
            and learner_links.link_to > daily_activity.activity_date
            and (%(as_known_now)s or learner_links.reference_date >= daily_activity.visible_from_date)
            and (
                daily_activity.hidden_from_date is null
                or (not %(as_known_now)s and learner_links.reference_date < daily_activity.hidden_from_date)
            )
),

windowed as (
    select
        employee_key,
        reference_date,
        sum(enrolments) filter (where activity_date > reference_date - 30) as enrolments_30d,
        sum(enrolments) filter (where activity_date > reference_date - 90) as enrolments_90d,
        sum(enrolments) filter (where activity_date > reference_date - 180) as enrolments_180d,
        sum(completions) filter (where activity_date > reference_date - 30) as completions_30d,
        sum(completions) filter (where activity_date > reference_date - 90) as completions_90d,
        sum(completions) filter (where activity_date > reference_date - 180) as completions_180d,
        sum(score_sum) filter (where activity_date > reference_date - 30) as score_sum_30d,
        sum(score_sum) filter (where activity_date > reference_date - 90) as score_sum_90d,
        sum(score_sum) filter (where activity_date > reference_date - 180) as score_sum_180d,
        sum(score_count) filter (where activity_date > reference_date - 30) as score_count_30d,
        sum(score_count) filter (where activity_date > reference_date - 90) as score_count_90d,
        sum(score_count) filter (where activity_date > reference_date - 180) as score_count_180d,
        sum(learning_seconds) filter (where activity_date > reference_date - 30) as learning_seconds_30d,
        sum(learning_seconds) filter (where activity_date > reference_date - 90) as learning_seconds_90d,
        sum(learning_seconds) filter (where activity_date > reference_date - 180) as learning_seconds_180d,
        sum(events) filter (where activity_date > reference_date - 30) as events_30d,
        sum(events) filter (
            where activity_date > reference_date - 120 and activity_date <= reference_date - 30
        ) as events_prior_90d,
        max(activity_date) as last_activity_date
    from daily
    group by employee_key, reference_date
),

course_days as (
    select
        daily.employee_key,
        daily.reference_date,
        daily.activity_date,
        touched.course_id
    from daily
    cross join lateral unnest(daily.course_ids) as touched (course_id)
    where daily.activity_date > daily.reference_date - 180
),

course_breadth as (
    select
        course_days.employee_key,
        course_days.reference_date,
        count(distinct course_days.course_id) filter (
            where course_days.activity_date > course_days.reference_date - 30
        ) as distinct_courses_30d,
        count(distinct course_days.course_id) filter (
            where course_days.activity_date > course_days.reference_date - 90
        ) as distinct_courses_90d,
        count(distinct course_days.course_id) as distinct_courses_180d
    from course_days
    group by course_days.employee_key, course_days.reference_date
),

skill_breadth as (
    select
        course_days.employee_key,
        course_days.reference_date,
        count(distinct skill.tag) as skill_tag_breadth_180d
    from course_days
    inner join catalog as course
        on course_days.reference_date = course.reference_date and course_days.course_id = course.course_id
    cross join lateral unnest(course.skill_tags) as skill (tag)
    group by course_days.employee_key, course_days.reference_date
),

weighted_completions as (
    select
        daily.employee_key,
        daily.reference_date,
        sum(course.difficulty) as difficulty_weighted_completions_180d
    from daily
    cross join lateral unnest(daily.completed_course_ids) as completed (course_id)
    inner join catalog as course
        on daily.reference_date = course.reference_date and completed.course_id = course.course_id
    where daily.activity_date > daily.reference_date - 180
    group by daily.employee_key, daily.reference_date
),

mandatory_enrolments as (
    -- the latest assignment of each mandatory course in the look-back, and whether it was done since
    select
        daily.employee_key,
        daily.reference_date,
        enrolled.course_id,
        course.due_within_days,
        max(daily.activity_date) as enrolled_date
    from daily
    cross join lateral unnest(daily.enrolled_course_ids) as enrolled (course_id)
    inner join catalog as course
        on daily.reference_date = course.reference_date and enrolled.course_id = course.course_id
    where course.is_mandatory and course.due_within_days is not null
    group by daily.employee_key, daily.reference_date, enrolled.course_id, course.due_within_days
),

mandatory_completions as (
    select
        daily.employee_key,
        daily.reference_date,
        completed.course_id,
        max(daily.activity_date) as completed_date
    from daily
    cross join lateral unnest(daily.completed_course_ids) as completed (course_id)
    group by daily.employee_key, daily.reference_date, completed.course_id
),

overdue as (
    select
        mandatory_enrolments.employee_key,
        mandatory_enrolments.reference_date,
        count(*) as mandatory_courses_overdue
    from mandatory_enrolments
    left join mandatory_completions
        on
            mandatory_enrolments.employee_key = mandatory_completions.employee_key
            and mandatory_enrolments.reference_date = mandatory_completions.reference_date
            and mandatory_enrolments.course_id = mandatory_completions.course_id
            and mandatory_enrolments.enrolled_date <= mandatory_completions.completed_date
    where
        mandatory_enrolments.enrolled_date + mandatory_enrolments.due_within_days < mandatory_enrolments.reference_date
        and mandatory_completions.course_id is null
    group by mandatory_enrolments.employee_key, mandatory_enrolments.reference_date
),

final as (
    select
        targets.employee_key,
        targets.reference_date,
        coalesce(windowed.enrolments_30d, 0)::integer as enrolments_30d,
        coalesce(windowed.enrolments_90d, 0)::integer as enrolments_90d,
        coalesce(windowed.enrolments_180d, 0)::integer as enrolments_180d,
        coalesce(windowed.completions_30d, 0)::integer as completions_30d,
        coalesce(windowed.completions_90d, 0)::integer as completions_90d,
        coalesce(windowed.completions_180d, 0)::integer as completions_180d,
        -- least() skips nulls: without enrolments the rate must stay null, not become 1
        case
            when windowed.enrolments_30d > 0
                then round(least(1, windowed.completions_30d::numeric / windowed.enrolments_30d), 6)
        end
            as completion_rate_30d,
        case
            when windowed.enrolments_90d > 0
                then round(least(1, windowed.completions_90d::numeric / windowed.enrolments_90d), 6)
        end
            as completion_rate_90d,
        case
            when windowed.enrolments_180d > 0
                then round(least(1, windowed.completions_180d::numeric / windowed.enrolments_180d), 6)
        end
            as completion_rate_180d,
        round(windowed.score_sum_30d / nullif(windowed.score_count_30d, 0), 6) as mean_score_30d,
        round(windowed.score_sum_90d / nullif(windowed.score_count_90d, 0), 6) as mean_score_90d,
        round(windowed.score_sum_180d / nullif(windowed.score_count_180d, 0), 6) as mean_score_180d,
        round(coalesce(windowed.learning_seconds_30d, 0) / 60.0, 2) as learning_minutes_30d,
        round(coalesce(windowed.learning_seconds_90d, 0) / 60.0, 2) as learning_minutes_90d,
        round(coalesce(windowed.learning_seconds_180d, 0) / 60.0, 2) as learning_minutes_180d,
        coalesce(course_breadth.distinct_courses_30d, 0)::integer as distinct_courses_30d,
        coalesce(course_breadth.distinct_courses_90d, 0)::integer as distinct_courses_90d,
        coalesce(course_breadth.distinct_courses_180d, 0)::integer as distinct_courses_180d,
        coalesce(overdue.mandatory_courses_overdue, 0)::integer as mandatory_courses_overdue,
        (targets.reference_date - windowed.last_activity_date)::integer as days_since_last_activity,
        -- add-one smoothed ratio of the last 30 days' events to the prior 90 days' monthly rate
        round((coalesce(windowed.events_30d, 0) + 1) / (coalesce(windowed.events_prior_90d, 0) / 3.0 + 1), 6)
            as engagement_trend,
        coalesce(skill_breadth.skill_tag_breadth_180d, 0)::integer as skill_tag_breadth_180d,
        coalesce(weighted_completions.difficulty_weighted_completions_180d, 0)::integer
            as difficulty_weighted_completions_180d
    from targets
    left join windowed
        on targets.employee_key = windowed.employee_key and targets.reference_date = windowed.reference_date
    left join course_breadth
        on targets.employee_key = course_breadth.employee_key and targets.reference_date = course_breadth.reference_date
    left join skill_breadth
        on targets.employee_key = skill_breadth.employee_key and targets.reference_date = skill_breadth.reference_date
    left join weighted_completions
        on
            targets.employee_key = weighted_completions.employee_key
            and targets.reference_date = weighted_completions.reference_date
    left join overdue
        on targets.employee_key = overdue.employee_key and targets.reference_date = overdue.reference_date
)

select * from final
