-- one row per HRIS employee_id: the employee_key it belongs to (stable across runs and rebuilds)
-- A run's rows for the employees in its scope, from its key plan (include/sql/staging/identity_key_plan.sql,
-- bound as the temporary identity_key_plan). The resolver upserts them and rewrites a row only when its key,
-- method, rule version or link changed, so assigned_at says when the assignment last changed.
with key_plan as (
    select
        hris_employee_id,
        employee_key,
        match_method,
        linked_to_hris_employee_id
    from identity_key_plan
),

final as (
    select
        hris_employee_id,
        employee_key,
        match_method,
        %(rule_version)s::integer as rule_version,
        linked_to_hris_employee_id,
        now() as assigned_at
    from key_plan
)

select * from final
