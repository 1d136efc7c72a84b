-- one row per reference date of the temp table feature_reference_dates: the active HR headcount as known at its cut-off
-- Counted from HR directly, not through the employee keys, so the feature gate checks that join; every
-- date is listed, so a date whose active employees got no row at all is seen too.
with active as (
    select
        reference_date,
        employee_id
    from hr_history_as_known
    where
        (valid_to is null or reference_date < valid_to)
        and (hire_date is null or hire_date <= reference_date)
        and (termination_date is null or termination_date > reference_date)
),

final as (
    select
        reference_dates.reference_date,
        count(distinct active.employee_id) as headcount
    from feature_reference_dates as reference_dates
    left join active on reference_dates.reference_date = active.reference_date
    group by reference_dates.reference_date
)

select * from final
