-- one row per pay change (employee_id, effective_date, change_type) across loaded compensation files
-- A change re-sent in a later file replaces the earlier version (latest file date wins).
with loaded_files as (
    select
        sha256,
        file_date,
        received_at,
        date_pattern,
        date_groups
    from audit.file_manifest
    where feed = 'compensation' and status = 'loaded'
),

typed as (
    select
        change_line.source_sha256,
        loaded_files.received_at as known_at,
        loaded_files.file_date,
        btrim(change_line.employee_id) as employee_id,
        core.parse_date_text(
            change_line.effective_date, loaded_files.date_pattern,
            loaded_files.date_groups[1], loaded_files.date_groups[2], loaded_files.date_groups[3]
        ) as effective_date,
        lower(btrim(change_line.change_type)) as change_type,
        core.parse_numeric_text(change_line.previous_base_salary) as previous_base_salary,
        core.parse_numeric_text(change_line.new_base_salary) as new_base_salary,
        nullif(btrim(change_line.currency), '') as currency
    from raw.hris_compensation_change as change_line
    inner join loaded_files on change_line.source_sha256 = loaded_files.sha256
),

ranked as (
    select
        *,
        row_number() over (
            partition by employee_id, effective_date, change_type
            order by file_date desc, known_at desc, source_sha256 asc
        ) as version_rank
    from typed
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
        known_at,
        case
            when previous_base_salary > 0
                then round((new_base_salary - previous_base_salary) / previous_base_salary * 100, 4)
        end as change_pct
    from ranked
    where version_rank = 1
)

select * from final
