-- one row per learner statement in core.lms_activity that happened today (UTC) and is not voided, as loaded so far
-- PROVISIONAL, NOT POINT-IN-TIME. The LRS watcher loads statements within minutes of being stored, so this
-- shows today's learning before any feature can: it changes with every load, a statement stored late or
-- voided later moves in or out, and nothing here is reproducible. Published features
-- (mart.employee_features) do not read it: a reference date is built from what was known by its cut-off
-- (end of the date + features.as_of_grace_hours).
create or replace view mart.lms_activity_today_provisional as
with activity as (
    select * from core.lms_activity
),

today as (
    select (statement_timestamp() at time zone 'UTC')::date as activity_date
),

todays_activity as (
    select
        activity.*,
        today.activity_date
    from activity
    cross join today
    where
        activity.occurred_at >= today.activity_date::timestamp at time zone 'UTC'
        and activity.occurred_at < (today.activity_date + 1)::timestamp at time zone 'UTC'
        and not activity.is_voided
),

final as (
    select
        statement_id,
        activity_date,
        learner_identifier,
        learner_identifier_type,
        event_type,
        verb_id,
        course_id,
        course_name,
        score_normalized,
        is_success,
        is_completion,
        duration_seconds,
        occurred_at,
        is_timestamp_assumed_utc,
        stored_at,
        loaded_at,
        true as is_provisional,
        'provisional: today (UTC) as loaded so far; not point-in-time, not a feature input' as data_status,
        statement_timestamp() as as_known_at
    from todays_activity
)

select * from final;

comment on view mart.lms_activity_today_provisional is
'PROVISIONAL, NOT POINT-IN-TIME: today''s (UTC) learner statements as loaded so far (the LRS watcher loads '
'within minutes). Changes with every load; not a feature input. Point-in-time data: mart.employee_features.';
