-- one row per hris_employee_id: the employment outcome the labels are computed from
-- From the employee's latest HR interval: a termination, or vanishing from the snapshots (the first
-- snapshot without the worker is the exit date). Labels keep their own rule: the outcome as known now.
with latest_interval as (
    select distinct on (employee_id)
        employee_id,
        termination_date,
        termination_category,
        closed_by,
        valid_to
    from core.employee_history
    order by employee_id asc, valid_from desc
),

final as (
    select
        employee_id as hris_employee_id,
        coalesce(termination_date, case when closed_by = 'absent_from_snapshot' then valid_to end) as exit_date,
        case
            when termination_date is not null then coalesce(termination_category, 'other')
            when closed_by = 'absent_from_snapshot' then 'vanished_from_snapshot'
        end as exit_category
    from latest_interval
)

select * from final
