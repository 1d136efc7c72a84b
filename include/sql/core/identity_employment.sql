-- one row per HRIS employee_id: the employment interval and SSO GUID the identity layer matches on
-- Scoped by %(employee_ids)s (null = every employee). The interval is [start, end): a leaver's
-- last day still counts; a worker who vanished from the snapshots without a termination date
-- ends where the history closed them.
with history as (
    select
        employee_id,
        valid_from,
        valid_to,
        closed_by,
        known_at,
        sso_guid,
        lms_user_id,
        hire_date,
        termination_date,
        termination_category
    from core.employee_history
    where %(employee_ids)s::text[] is null or employee_id = any(%(employee_ids)s::text[])
),

latest as (
    select distinct on (employee_id)
        employee_id,
        valid_to,
        closed_by,
        hire_date,
        termination_date,
        termination_category
    from history
    order by employee_id asc, valid_from desc
),

summarized as (
    select
        employee_id,
        min(valid_from) as first_snapshot_date,
        max(known_at) as known_at,
        -- The latest GUID HR recorded: a GUID blanked in a later file does not unlink the person.
        (array_agg(lower(sso_guid) order by valid_from desc) filter (where sso_guid is not null))[1] as sso_guid,
        (array_agg(lms_user_id order by valid_from desc) filter (where lms_user_id is not null))[1] as lms_user_id
    from history
    group by employee_id
),

final as (
    select
        latest.employee_id as hris_employee_id,
        summarized.sso_guid,
        summarized.lms_user_id,
        latest.termination_category,
        summarized.known_at,
        coalesce(least(latest.hire_date, summarized.first_snapshot_date), summarized.first_snapshot_date)
            as employment_start_date,
        case
            when latest.termination_date is not null then latest.termination_date + 1
            when latest.closed_by = 'absent_from_snapshot' then latest.valid_to
        end as employment_end_date,
        latest.termination_date is null and latest.valid_to is null as is_current
    from latest
    inner join summarized on latest.employee_id = summarized.employee_id
)

select * from final
