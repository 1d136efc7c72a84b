-- one row per employee_id per validity interval per version known before a correction touched the employee
-- Reads the temp table history_before_correction: for each employees-file correction (in the order
-- they became known), the history of the employees in the corrected date's files as known just before
-- it (known_until). A version was known from the previous correction of the employee on (null: always).
with before_correction as (
    select * from history_before_correction
),

corrections_of_employee as (
    select
        corrections.employee_id,
        corrections.known_until,
        lag(corrections.known_until) over (
            partition by corrections.employee_id order by corrections.known_until
        ) as previous_known_until
    from (
        select distinct
            employee_id,
            known_until
        from before_correction
    ) as corrections
),

final as (
    select
        before_correction.employee_id,
        before_correction.valid_from,
        before_correction.valid_to,
        before_correction.is_current,
        before_correction.closed_by,
        before_correction.known_at,
        before_correction.source_sha256,
        before_correction.sso_guid,
        before_correction.work_email,
        before_correction.first_name,
        before_correction.last_name,
        before_correction.hire_date,
        before_correction.termination_date,
        before_correction.termination_type,
        before_correction.termination_category,
        before_correction.termination_reason,
        before_correction.employment_status,
        before_correction.job_role,
        before_correction.job_level,
        before_correction.job_level_raw,
        before_correction.job_level_label,
        before_correction.department,
        before_correction.location,
        before_correction.manager_id,
        before_correction.base_salary,
        before_correction.currency,
        before_correction.fte,
        before_correction.performance_rating,
        before_correction.lms_user_id,
        before_correction.known_until,
        corrections_of_employee.previous_known_until as known_from
    from before_correction
    inner join corrections_of_employee
        on
            before_correction.employee_id = corrections_of_employee.employee_id
            and before_correction.known_until = corrections_of_employee.known_until
)

select * from final
