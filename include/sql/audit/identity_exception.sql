-- one row per detected identity conflict, kept (and closed, never deleted) across runs
-- A run's rows: the conflicts it detects (include/sql/staging/identity_exception_detected.sql, bound as the
-- temporary identity_exception_detected), opened as new. The resolver upserts them: a known conflict keeps
-- its status and first sighting (a steward's resolution sticks) unless it had closed itself, and conflicts
-- in scope no longer detected are closed, never deleted.
with detected as (
    select
        exception_id,
        kind,
        hris_employee_ids,
        lms_user_ids,
        employee_keys,
        evidence
    from identity_exception_detected
),

final as (
    select distinct on (exception_id)
        exception_id,
        kind,
        'open' as status,
        hris_employee_ids,
        lms_user_ids,
        employee_keys,
        evidence,
        %(run_id)s::text as first_seen_run_id,
        now() as first_seen_at
    from detected
)

select * from final
