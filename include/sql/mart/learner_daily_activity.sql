-- one row per xAPI actor per activity day (UTC) per visible_from_date per hidden_from_date
-- A statement is known from its LRS `stored` time (before a configured import cut-over, when the LRS's
-- history was bulk-imported with one stored day, from its timestamp + a lag, unless stored earlier),
-- and its void from the voiding statement's stored time. visible_from_date is the first reference date
-- whose cut-off (end of the date + %(as_of_grace)s) is at or after the statement's knowledge time,
-- hidden_from_date the first one at or after its void's; a reference date D counts a row when
-- activity_date <= D, visible_from_date <= D and hidden_from_date is null or after D. Nothing here
-- depends on when the aggregate is built.
-- %(scope)s 'full' reads all activity; 'refresh' only the (actor, day) groups listed in the temp
-- table learner_daily_refresh (duplicates allowed).
with scoped_activity as (
    -- the branch of the other scope is pruned when the query is planned; 'refresh' finds its groups
    -- through the (learner_identifier, occurred_at) index
    select activity.*
    from core.lms_activity as activity
    where %(scope)s = 'full'
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
    where %(scope)s = 'refresh'
),

known as (
    select
        scoped_activity.learner_identifier,
        scoped_activity.event_type,
        scoped_activity.course_id,
        scoped_activity.score_normalized,
        scoped_activity.duration_seconds,
        void.void_stored_at as void_known_at,
        (scoped_activity.occurred_at at time zone 'UTC')::date as activity_date,
        case
            when scoped_activity.stored_at < %(import_cutover)s::timestamptz
                then least(scoped_activity.stored_at, scoped_activity.occurred_at + %(import_knowledge_lag)s::interval)
            else scoped_activity.stored_at
        end as known_at
    from scoped_activity
    left join audit.lms_void_applied as void on scoped_activity.statement_id = void.voided_statement_id
),

dated as (
    -- the first date D with end of D + grace >= t is the UTC date of t - grace - 1 microsecond
    select
        learner_identifier,
        event_type,
        course_id,
        score_normalized,
        duration_seconds,
        activity_date,
        ((known_at - %(as_of_grace)s::interval - interval '1 microsecond') at time zone 'UTC')::date
            as visible_from_date,
        ((void_known_at - %(as_of_grace)s::interval - interval '1 microsecond') at time zone 'UTC')::date
            as hidden_from_date
    from known
),

final as (
    select
        learner_identifier,
        activity_date,
        visible_from_date,
        hidden_from_date,
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
    from dated
    -- a statement voided before anyone could know it never counts for any date
    where hidden_from_date is null or hidden_from_date > visible_from_date
    group by learner_identifier, activity_date, visible_from_date, hidden_from_date
)

select * from final
