-- one row per employee_key per reference date at which the employee is active, per HR as of that date
-- Active: an HR interval covers the date, hired on or before it, not terminated on or before it.
with reference_dates as (
    select unnest(%(reference_dates)s::date[]) as reference_date
),

covering_intervals as (
    select distinct on (employee_key.employee_key, reference_dates.reference_date)
        employee_key.employee_key,
        reference_dates.reference_date,
        history.employee_id as hris_employee_id
    from reference_dates
    inner join core.employee_history as history
        on
            reference_dates.reference_date >= history.valid_from
            and (history.valid_to is null or reference_dates.reference_date < history.valid_to)
    inner join core.hris_employee_key as employee_key on history.employee_id = employee_key.hris_employee_id
    where
        (history.hire_date is null or history.hire_date <= reference_dates.reference_date)
        and (history.termination_date is null or history.termination_date > reference_dates.reference_date)
    order by
        employee_key.employee_key asc,
        reference_dates.reference_date asc,
        history.hire_date desc nulls last
),

final as (
    select
        employee_key,
        reference_date,
        hris_employee_id,
        %(lms_cutoff_at)s::timestamptz as lms_cutoff_at,
        (%(lms_cutoff_at)s::timestamptz at time zone 'UTC')::date as lms_cutoff_date
    from covering_intervals
)

select * from final
