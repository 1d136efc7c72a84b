-- Near-real-time LMS (the LRS watcher): a clearly provisional view of today's activity, and an index for it.
-- The view's query is include/sql/mart/lms_activity_today_provisional.sql, carried here verbatim (a test
-- compares the two): read the grain and the reasons there. Published features never read this view.

-- today's rows are found by their occurred_at alone (lms_activity_learner_idx leads with the learner)
create index if not exists lms_activity_occurred_idx on core.lms_activity (occurred_at);

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

-- the transformer reads and builds mart like every mart relation (0019, governance.apply_role_privileges)
select governance.apply_role_privileges();
