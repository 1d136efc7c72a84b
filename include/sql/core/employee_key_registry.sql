-- one row per employee_key ever issued; a key is never reused (merged keys stay, pointing on)
-- A run adds the keys its key plan issues (include/sql/staging/identity_key_plan.sql, bound as the
-- temporary identity_key_plan) and never deletes one: the resolver marks a key nobody holds any more
-- as merged into the key that replaced it.
with key_plan as (
    select
        hris_employee_id,
        new_employee_key
    from identity_key_plan
),

final as (
    select
        new_employee_key as employee_key,
        hris_employee_id as issued_for_hris_employee_id,
        %(run_id)s::text as issued_by_run_id,
        now() as issued_at
    from key_plan
    where new_employee_key is not null
)

select * from final
