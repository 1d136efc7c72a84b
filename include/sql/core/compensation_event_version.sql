-- one row per pay change (employee_id, effective_date, change_type) per version, as the HRIS files made it known
-- A version is what the files known at a moment said about the change: among the files known by then and
-- not yet superseded by a correction known by then, the latest-dated one showing the change wins. It holds
-- from known_from until the next moment that changes it (known_until; null: current); a correction that
-- no longer shows the change ends it with no successor. Files are known per core.hris_file_knowledge.
-- Files that retention sealed (core.hris_sealed_file) contribute the versions built from them, kept in
-- core.compensation_change_baseline; a loaded file dated on or before the last sealed one
-- (core.hris_sealed_through) arrived after its period was sealed and is not used. With
-- %(sealed_files_only)s the build covers the sealed files alone: that is how retention computes the
-- baseline before dropping their raw partitions.
with sealed_files as (
    select
        sha256,
        file_date
    from core.hris_sealed_file
    where feed = 'compensation'
),

seal as (
    select sealed_through_date
    from core.hris_sealed_through
    where feed = 'compensation'
),

correction_knowledge as (
    select
        sha256,
        min(known_at) as known_at
    from core.hris_file_knowledge
    where feed = 'compensation'
    group by sha256
),

loaded_files as (
    -- with the files a correction superseded: what they said was known until the correction was
    select
        manifest.sha256,
        manifest.file_date,
        knowledge.known_at,
        manifest.date_pattern,
        manifest.date_groups,
        case
            -- a file superseded by a correction this warehouse does not hold is withdrawn from the start
            when manifest.status = 'superseded' then coalesce(correction_knowledge.known_at, knowledge.known_at)
        end as superseded_at
    from audit.file_manifest as manifest
    inner join core.hris_file_knowledge as knowledge
        on manifest.file_name = knowledge.file_name and manifest.sha256 = knowledge.sha256
    left join correction_knowledge on manifest.superseded_by_sha256 = correction_knowledge.sha256
    where
        manifest.feed = 'compensation' and manifest.status in ('loaded', 'superseded')
        and case
            when %(sealed_files_only)s then manifest.sha256 in (select sealed_files.sha256 from sealed_files)
            else manifest.file_date > coalesce((select seal.sealed_through_date from seal), '-infinity')
        end
),

baseline_rows as (
    -- a sealed version stands for a file known from its known_from and superseded at its known_until
    select
        baseline.source_sha256,
        baseline.known_from as known_at,
        sealed_files.file_date,
        baseline.employee_id,
        baseline.effective_date,
        baseline.change_type,
        baseline.previous_base_salary,
        baseline.new_base_salary,
        baseline.currency,
        baseline.known_until as superseded_at
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
        loaded_files.superseded_at
    from raw.hris_compensation_change as change_line
    inner join loaded_files on change_line.source_sha256 = loaded_files.sha256
),

typed as (
    select * from baseline_rows
    union all
    select * from live_rows
),

moments as (
    -- when what is known about a change can change: a file showing it becomes known, or is superseded
    select
        employee_id,
        effective_date,
        change_type,
        known_at as moment
    from typed
    union
    select
        employee_id,
        effective_date,
        change_type,
        superseded_at as moment
    from typed
    where superseded_at is not null
),

winners as (
    select distinct on (moments.employee_id, moments.effective_date, moments.change_type, moments.moment)
        moments.employee_id,
        moments.effective_date,
        moments.change_type,
        moments.moment,
        typed.source_sha256,
        typed.previous_base_salary,
        typed.new_base_salary,
        typed.currency
    from moments
    left join typed
        on
            moments.employee_id = typed.employee_id
            and moments.effective_date = typed.effective_date
            and moments.change_type = typed.change_type
            and moments.moment >= typed.known_at
            and (typed.superseded_at is null or moments.moment < typed.superseded_at)
    order by
        moments.employee_id asc, moments.effective_date asc, moments.change_type asc, moments.moment asc,
        typed.file_date desc nulls last, typed.known_at desc, typed.source_sha256 asc
),

changed as (
    -- a moment won by the same file as the moment before starts no new version (a withdrawn change: no file)
    select
        *,
        coalesce(source_sha256, 'withdrawn') <> lag(coalesce(source_sha256, 'withdrawn'), 1, '') over (
            partition by employee_id, effective_date, change_type order by moment
        ) as starts_version
    from winners
),

versions as (
    select
        *,
        lead(moment) over (partition by employee_id, effective_date, change_type order by moment) as next_moment,
        case
            when previous_base_salary > 0
                then round((new_base_salary - previous_base_salary) / previous_base_salary * 100, 4)
        end as change_pct
    from changed
    where starts_version
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
        moment as known_from,
        change_pct,
        next_moment as known_until
    from versions
    -- a moment with no winner: a correction withdrew the change
    where source_sha256 is not null
)

select * from final
