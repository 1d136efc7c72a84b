-- one row per pay change (employee_id, effective_date, change_type) as the HRIS files say it now
-- The current version of each change in core.compensation_event_version (a change re-sent in a later file
-- takes that file's values; one a correction withdrew is gone). known_at is when the change first became
-- known, through any file showing it, even one a correction superseded since: a back-dated raise is known
-- from the file that first shows it. Feature rows read the versions, not this table.
with versions as (
    select
        *,
        min(known_from) over (partition by employee_id, effective_date, change_type) as first_known_at
    from core.compensation_event_version
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
        first_known_at as known_at,
        change_pct
    from versions
    where known_until is null
)

select * from final
