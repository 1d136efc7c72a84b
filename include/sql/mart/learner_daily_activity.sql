-- one row per xAPI actor per activity day (UTC) per stored day; voided statements never count
-- A full build reads all activity; otherwise only the (actor, day) groups listed in the temp
-- table learner_daily_refresh are recomputed (new statements, new voids; duplicates allowed).
with scoped_activity as (
    -- full build: every statement; otherwise only the listed groups, found through the
    -- (learner_identifier, occurred_at) index (one branch is pruned when the query is planned)
    select activity.*
    from core.lms_activity as activity
    where %(is_full)s::boolean
    union all
    select activity.*
    from (
        select distinct
            learner_identifier,
            activity_date
        from learner_daily_refresh
    ) as refresh_group
    inner join core.lms_activity as activity
        on
            refresh_group.learner_identifier = activity.learner_identifier
            and activity.occurred_at >= refresh_group.activity_date::timestamp at time zone 'UTC'
            and activity.occurred_at < (refresh_group.activity_date + 1)::timestamp at time zone 'UTC'
    where not %(is_full)s::boolean
),

activity as (
    select
        learner_identifier,
        event_type,
        course_id,
        score_normalized,
        duration_seconds,
        (occurred_at at time zone 'UTC')::date as activity_date,
        (stored_at at time zone 'UTC')::date as stored_date
    from scoped_activity
    where not is_voided
),

final as (
    select
        learner_identifier,
        activity_date,
        stored_date,
        count(*)::integer as events,
        (count(*) filter (where event_type = 'enrolled'))::integer as enrolments,
        (count(*) filter (where event_type = 'completed'))::integer as completions,
        coalesce(sum(score_normalized), 0) as score_sum,
        count(score_normalized)::integer as score_count,
        coalesce(sum(duration_seconds), 0)::bigint as learning_seconds,
        coalesce(array_agg(distinct course_id) filter (where course_id is not null), '{}') as course_ids,
        coalesce(
            array_agg(distinct course_id) filter (where course_id is not null and event_type = 'enrolled'), '{}'
        ) as enrolled_course_ids,
        coalesce(
            array_agg(distinct course_id) filter (where course_id is not null and event_type = 'completed'), '{}'
        ) as completed_course_ids
    from activity
    group by learner_identifier, activity_date, stored_date
)

select * from final
