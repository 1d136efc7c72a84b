-- one row per target (employee_key, reference_date): HR attributes as known at the reference date's cut-off
-- Reads the temp tables feature_targets and hr_history_as_known: only intervals starting on
-- or before the date and known by its cut-off, and pay changes effective by the date in the version known
-- at the cut-off (a back-dated raise counts from the first file showing it; a later correction of a change
-- does not exist for the date). Nothing recorded later leaks in.
with targets as (
    select
        employee_key,
        reference_date,
        hris_employee_id,
        cutoff_at
    from feature_targets
),

employee_rows as (
    select
        history.*,
        lag(history.job_role) over by_employee as previous_job_role,
        lag(history.manager_id) over by_employee as previous_manager_id,
        -- a previous interval exists (job_role and manager_id are optional columns: never infer it from them)
        lag(history.valid_from) over by_employee as previous_valid_from
    from hr_history_as_known as history
    where history.employee_id in (select targets.hris_employee_id from targets)
    window by_employee as (partition by history.reference_date, history.employee_id order by history.valid_from)
),

as_of as (
    select
        targets.employee_key,
        targets.reference_date,
        employee_rows.employee_id,
        employee_rows.hire_date,
        employee_rows.job_level,
        employee_rows.department,
        employee_rows.location,
        employee_rows.manager_id,
        employee_rows.performance_rating
    from targets
    inner join employee_rows
        on
            targets.hris_employee_id = employee_rows.employee_id
            and targets.reference_date = employee_rows.reference_date
            and (employee_rows.valid_to is null or targets.reference_date < employee_rows.valid_to)
),

role_and_manager_changes as (
    select
        targets.employee_key,
        targets.reference_date,
        max(employee_rows.valid_from) filter (
            where employee_rows.previous_job_role is distinct from employee_rows.job_role
            and employee_rows.previous_valid_from is not null
        ) as role_started_date,
        count(*) filter (
            where employee_rows.previous_manager_id is distinct from employee_rows.manager_id
            and employee_rows.previous_valid_from is not null
            and employee_rows.valid_from > targets.reference_date - 365
        ) as manager_changes_12m
    from targets
    inner join employee_rows
        on
            targets.hris_employee_id = employee_rows.employee_id
            and targets.reference_date = employee_rows.reference_date
    group by targets.employee_key, targets.reference_date
),

pay_changes as (
    select
        targets.employee_key,
        targets.reference_date,
        max(compensation.effective_date) filter (where compensation.change_type = 'promotion') as last_promotion_date,
        max(compensation.effective_date) filter (
            where compensation.change_type in ('merit_increase', 'promotion', 'market_adjustment')
        ) as last_raise_date,
        bool_or(
            compensation.change_type = 'pay_freeze' and compensation.effective_date > targets.reference_date - 365
        ) as is_pay_frozen,
        (array_agg(compensation.change_pct order by compensation.effective_date desc) filter (
            where compensation.change_type <> 'hire' and compensation.change_pct is not null
        ))[1] as last_pay_change_pct
    from targets
    inner join core.compensation_event_version as compensation
        on
            targets.hris_employee_id = compensation.employee_id
            and targets.reference_date >= compensation.effective_date
            -- the version known at the cut-off: a later correction does not exist for this date
            and targets.cutoff_at >= compensation.known_from
            and (compensation.known_until is null or targets.cutoff_at < compensation.known_until)
    group by targets.employee_key, targets.reference_date
),

active_at_date as (
    -- active as in feature_targets: a pre-boarding record listed before its hire date is no one's colleague yet
    select
        history.reference_date,
        history.employee_id,
        history.manager_id,
        history.hire_date
    from hr_history_as_known as history
    where
        (history.valid_to is null or history.reference_date < history.valid_to)
        and (history.hire_date is null or history.hire_date <= history.reference_date)
        and (history.termination_date is null or history.termination_date > history.reference_date)
),

team_sizes as (
    select
        reference_date,
        manager_id,
        count(*) as team_size
    from active_at_date
    where manager_id is not null
    group by reference_date, manager_id
),

recorded_exits as (
    -- the employees with a termination in the 90 days through the date, as known at its cut-off
    select distinct
        reference_date,
        employee_id
    from hr_history_as_known
    where termination_date <= reference_date and termination_date > reference_date - 90
),

exits as (
    -- each exit once, on the termination date HR had last recorded by the cut-off
    select distinct on (recorded_exits.reference_date, recorded_exits.employee_id)
        recorded_exits.reference_date,
        recorded_exits.employee_id,
        history.termination_date
    from recorded_exits
    inner join hr_history_as_known as history
        on
            recorded_exits.reference_date = history.reference_date
            and recorded_exits.employee_id = history.employee_id
    order by recorded_exits.reference_date asc, recorded_exits.employee_id asc, history.valid_from desc
),

leavers as (
    -- with the manager the leaver had when they left: the interval in effect on the termination
    -- date (else the first one after it), never one HR recorded later, which may name another manager
    select distinct on (exits.reference_date, exits.employee_id)
        exits.reference_date,
        exits.employee_id,
        exits.termination_date,
        history.manager_id
    from exits
    inner join hr_history_as_known as history
        on exits.reference_date = history.reference_date and exits.employee_id = history.employee_id
    where exits.termination_date <= exits.reference_date and exits.termination_date > exits.reference_date - 90
    order by
        exits.reference_date asc,
        exits.employee_id asc,
        history.valid_from > exits.termination_date asc,
        abs(history.valid_from - exits.termination_date) asc
),

team_leavers as (
    select
        reference_date,
        manager_id,
        count(*) as team_leavers_90d
    from leavers
    group by reference_date, manager_id
),

final as (
    select
        as_of.employee_key,
        as_of.reference_date,
        as_of.job_level,
        as_of.department,
        as_of.location,
        as_of.performance_rating,
        pay_changes.last_pay_change_pct,
        (as_of.reference_date - as_of.hire_date)::integer as tenure_days,
        (as_of.reference_date - coalesce(role_and_manager_changes.role_started_date, as_of.hire_date))::integer
            as time_in_role_days,
        (as_of.reference_date - pay_changes.last_promotion_date)::integer as days_since_last_promotion,
        coalesce(role_and_manager_changes.manager_changes_12m, 0)::integer as manager_changes_12m,
        (as_of.reference_date - manager.hire_date)::integer as manager_tenure_days,
        (
            extract(year from age(as_of.reference_date, pay_changes.last_raise_date)) * 12
            + extract(month from age(as_of.reference_date, pay_changes.last_raise_date))
        )::integer as months_since_last_raise,
        coalesce(pay_changes.is_pay_frozen, false) as is_pay_frozen,
        coalesce(team_sizes.team_size, 0)::integer as team_size,
        coalesce(team_leavers.team_leavers_90d, 0)::integer as team_leavers_90d
    from as_of
    left join role_and_manager_changes
        on
            as_of.employee_key = role_and_manager_changes.employee_key
            and as_of.reference_date = role_and_manager_changes.reference_date
    left join pay_changes
        on as_of.employee_key = pay_changes.employee_key and as_of.reference_date = pay_changes.reference_date
    left join active_at_date as manager
        on as_of.manager_id = manager.employee_id and as_of.reference_date = manager.reference_date
    left join team_sizes
        on as_of.manager_id = team_sizes.manager_id and as_of.reference_date = team_sizes.reference_date
    left join team_leavers
        on as_of.manager_id = team_leavers.manager_id and as_of.reference_date = team_leavers.reference_date
)

select * from final
