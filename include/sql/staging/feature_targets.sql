-- one row per employee_key per reference date at which the employee is active, per HR as known at its cut-off
-- Active: an interval of the temp table hr_history_as_known (HR as known at the date's cut-off) covers
-- the date, hired on or before it, not terminated on or before it.
with covering_intervals as (
    select distinct on (employee_key.employee_key, history.reference_date)
        employee_key.employee_key,
        history.reference_date,
        history.cutoff_at,
        history.employee_id as hris_employee_id
    from hr_history_as_known as history
    inner join core.hris_employee_key as employee_key on history.employee_id = employee_key.hris_employee_id
    where
        (history.valid_to is null or history.reference_date < history.valid_to)
        and (history.hire_date is null or history.hire_date <= history.reference_date)
        and (history.termination_date is null or history.termination_date > history.reference_date)
    order by
        employee_key.employee_key asc,
        history.reference_date asc,
        history.hire_date desc nulls last
),

final as (
    select
        employee_key,
        reference_date,
        hris_employee_id,
        cutoff_at,
        (cutoff_at at time zone 'UTC')::date as lms_cutoff_date
    from covering_intervals
)

select * from final
