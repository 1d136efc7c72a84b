-- one row per xAPI actor per activity day (UTC) per stored day (per cut-off); voided statements never count
-- %(scope)s 'full' reads all activity; 'refresh' only the (actor, day) groups listed in the temp
-- table learner_daily_refresh (new statements, new voids; duplicates allowed); 'cutoff_day' the
-- statements stored on the day of each cut-off in %(lms_cutoffs)s up to that exact time, one set of
-- rows per cut-off (stored_through; null in the other scopes), so a feature row counts its cut-off
-- day exactly as far as its build saw it (%(learner_identifiers)s: only these actors; null: all).
with scoped_activity as (
    -- the branches of the other scopes are pruned when the query is planned; 'refresh' finds its
    -- groups through the (learner_identifier, occurred_at) index
    select
        activity.*,
        null::timestamptz as stored_through
    from core.lms_activity as activity
    where %(scope)s = 'full'
    union all
    select
        activity.*,
        null::timestamptz as stored_through
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
    where %(scope)s = 'refresh'
    union all
    select
        activity.*,
        cutoffs.lms_cutoff_at as stored_through
    from (select distinct unnest(%(lms_cutoffs)s::timestamptz[]) as lms_cutoff_at) as cutoffs
    inner join core.lms_activity as activity
        on
            date_trunc('day', cutoffs.lms_cutoff_at, 'UTC') <= activity.stored_at
            and cutoffs.lms_cutoff_at >= activity.stored_at
    where
        %(scope)s = 'cutoff_day'
        -- a void recompute reads only its targets' actors (through the actor index)
        and (
            %(learner_identifiers)s::text[] is null
            or activity.learner_identifier = any(%(learner_identifiers)s::text[])
        )
),

activity as (
    select
        learner_identifier,
        event_type,
        course_id,
        score_normalized,
        duration_seconds,
        stored_through,
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
        stored_through,
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
        -- one element per completion (a course completed twice in a day weighs twice in
        -- difficulty_weighted_completions_180d, as completions_180d counts it twice)
        coalesce(
            array_agg(course_id order by course_id) filter (where course_id is not null and event_type = 'completed'),
            '{}'
        ) as completed_course_ids
    from activity
    group by learner_identifier, activity_date, stored_date, stored_through
)

select * from final
