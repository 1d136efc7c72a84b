-- one row per pay change (employee_id, effective_date, change_type) per version, as the sealed files made it known
-- The versions core/compensation_event_version.sql builds over the sealed files alone (sealed_files_only),
-- which retention computes into the temporary table compensation_event_version_built before the old
-- baseline goes: that build reads the baseline for the files sealed earlier.
with sealed_versions as (
    select * from compensation_event_version_built
),

final as (
    select
        employee_id,
        effective_date,
        change_type,
        previous_base_salary,
        new_base_salary,
        currency,
        source_sha256,
        known_from,
        change_pct,
        known_until
    from sealed_versions
)

select * from final
