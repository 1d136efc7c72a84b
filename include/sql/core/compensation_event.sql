-- one row per pay change (employee_id, effective_date, change_type) across loaded compensation files
-- A change re-sent in a later file replaces the earlier version (latest file date wins); known_at is when
-- the change first became known (core.hris_file_knowledge), through any file showing it, even one a
-- correction superseded since: a back-dated raise is known from the file that first shows it. Files that
-- retention sealed (core.hris_sealed_file) contribute the versions that won among them, kept in
-- core.compensation_change_baseline; a loaded file dated on or before the last sealed one arrived
-- after its period was sealed and is not used. With %(sealed_files_only)s the build covers the sealed
-- files alone: that is how retention computes the baseline before dropping their raw partitions.
with sealed_files as (
    select
        sha256,
        file_date
    from core.hris_sealed_file
    where feed = 'compensation'
),

loaded_files as (
    -- with the files a correction superseded: they tell when a change was first known
    select
        manifest.sha256,
        manifest.file_date,
        knowledge.known_at,
        manifest.date_pattern,
        manifest.date_groups,
        manifest.status = 'loaded' as is_current_file
    from audit.file_manifest as manifest
    inner join core.hris_file_knowledge as knowledge
        on manifest.file_name = knowledge.file_name and manifest.sha256 = knowledge.sha256
    where
        manifest.feed = 'compensation' and manifest.status in ('loaded', 'superseded')
        and case
            when %(sealed_files_only)s then manifest.sha256 in (select sealed_files.sha256 from sealed_files)
            else manifest.file_date > (select coalesce(max(sealed_files.file_date), '-infinity') from sealed_files)
        end
),

baseline_rows as (
    select
        baseline.source_sha256,
        baseline.known_at,
        sealed_files.file_date,
        baseline.employee_id,
        baseline.effective_date,
        baseline.change_type,
        baseline.previous_base_salary,
        baseline.new_base_salary,
        baseline.currency,
        true as is_current_file
    from core.compensation_change_baseline as baseline
    inner join sealed_files on baseline.source_sha256 = sealed_files.sha256
),

live_rows as (
    select
        change_line.source_sha256,
        loaded_files.known_at,
        loaded_files.file_date,
        btrim(change_line.employee_id) as employee_id,
        core.parse_date_text(
            change_line.effective_date, loaded_files.date_pattern,
            loaded_files.date_groups[1], loaded_files.date_groups[2], loaded_files.date_groups[3]
        ) as effective_date,
        lower(btrim(change_line.change_type)) as change_type,
        core.parse_numeric_text(change_line.previous_base_salary) as previous_base_salary,
        core.parse_numeric_text(change_line.new_base_salary) as new_base_salary,
        nullif(btrim(change_line.currency), '') as currency,
        loaded_files.is_current_file
    from raw.hris_compensation_change as change_line
    inner join loaded_files on change_line.source_sha256 = loaded_files.sha256
),

typed as (
    select * from baseline_rows
    union all
    select * from live_rows
),

ranked as (
    select
        *,
        row_number() over (
            partition by employee_id, effective_date, change_type
            order by is_current_file desc, file_date desc, known_at desc, source_sha256 asc
        ) as version_rank,
        min(known_at) over (partition by employee_id, effective_date, change_type) as first_known_at
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
        first_known_at as known_at,
        case
            when previous_base_salary > 0
                then round((new_base_salary - previous_base_salary) / previous_base_salary * 100, 4)
        end as change_pct
    from ranked
    -- a change only a superseded file showed was withdrawn by the correction
    where version_rank = 1 and is_current_file
)

select * from final
