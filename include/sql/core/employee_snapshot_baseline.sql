-- one row per employee_id per run of consecutive sealed snapshots showing the same attributes
-- Retention cuts the history at the seal: an interval of the history that spans sealed snapshots becomes
-- a run from its first snapshot to the last sealed one it spans. The history is the core/employee_history.sql
-- build, which retention computes into the temporary table employee_history_built before it records the
-- newly sealed files: core.employee_history may be stale and stores numerics rounded, and the baseline needs
-- the values the build compares intervals by.
with history_as_built as (
    select * from employee_history_built
),

sealed_snapshots as (
    select file_date as snapshot_date
    from core.hris_sealed_file
    where feed = 'employees'
),

final as (
    select
        history.employee_id,
        history.valid_from as first_snapshot_date,
        sealed_run.last_snapshot_date,
        history.known_at,
        history.source_sha256,
        history.sso_guid,
        history.work_email,
        history.first_name,
        history.last_name,
        history.hire_date,
        history.termination_date,
        history.termination_type,
        history.termination_reason,
        history.employment_status,
        history.job_role,
        history.job_level,
        history.job_level_raw,
        history.department,
        history.location,
        history.manager_id,
        history.base_salary,
        history.currency,
        history.fte,
        history.performance_rating,
        history.lms_user_id
    from history_as_built as history
    cross join
        lateral (
            select max(sealed_snapshots.snapshot_date) as last_snapshot_date
            from sealed_snapshots
            where
                sealed_snapshots.snapshot_date >= history.valid_from
                and (history.valid_to is null or sealed_snapshots.snapshot_date < history.valid_to)
        ) as sealed_run
    -- an interval that starts after the seal stays in the live snapshots
    where sealed_run.last_snapshot_date is not null
)

select * from final
