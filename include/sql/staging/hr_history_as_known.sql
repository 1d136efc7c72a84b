-- one row per reference date of the temp table feature_reference_dates per HR interval as known at the
-- date's cut-off that starts on or before the date
-- core.employee_history is the history as known now; core.employee_history_revision keeps, for the
-- employees a correction touched, their history as known before each correction (known_from ..
-- known_until). An interval counts for a date when the file that first showed it was known by the
-- cut-off (known_at) and its version of the employee's history was the one known then.
with reference_dates as (
    select
        reference_date,
        cutoff_at
    from feature_reference_dates
),

corrected as (
    select
        employee_id,
        max(known_until) as known_from
    from core.employee_history_revision
    group by employee_id
),

versions as (
    select
        history.employee_id,
        history.valid_from,
        history.valid_to,
        history.known_at,
        history.hire_date,
        history.termination_date,
        history.job_role,
        history.job_level,
        history.department,
        history.location,
        history.manager_id,
        history.performance_rating,
        corrected.known_from,
        null::timestamptz as known_until
    from core.employee_history as history
    left join corrected on history.employee_id = corrected.employee_id
    union all
    select
        revision.employee_id,
        revision.valid_from,
        revision.valid_to,
        revision.known_at,
        revision.hire_date,
        revision.termination_date,
        revision.job_role,
        revision.job_level,
        revision.department,
        revision.location,
        revision.manager_id,
        revision.performance_rating,
        revision.known_from,
        revision.known_until
    from core.employee_history_revision as revision
),

final as (
    select
        reference_dates.reference_date,
        reference_dates.cutoff_at,
        versions.employee_id,
        versions.valid_from,
        versions.valid_to,
        versions.known_at,
        versions.hire_date,
        versions.termination_date,
        versions.job_role,
        versions.job_level,
        versions.department,
        versions.location,
        versions.manager_id,
        versions.performance_rating
    from reference_dates
    inner join versions
        on
            reference_dates.reference_date >= versions.valid_from
            and reference_dates.cutoff_at >= versions.known_at
            and (versions.known_from is null or reference_dates.cutoff_at >= versions.known_from)
            and (versions.known_until is null or reference_dates.cutoff_at < versions.known_until)
)

select * from final
