-- one row per employee_id per validity interval over the loaded employees snapshots
-- An interval starts at the first snapshot showing a version of the worker's attributes and
-- ends (valid_to, exclusive) at the first snapshot that shows another version or no longer
-- lists the worker. known_at is when the file that first showed it became known
-- (core.hris_file_knowledge: its date's end + the delivery lag, a correction's delivery time).
-- %(known_by)s null: the history as known now (the loaded files); a time: as known then (per date,
-- the file, loaded or since superseded, known last by that time). %(employee_ids)s: only these (null: all).
-- Snapshots that retention sealed (core.hris_sealed_file) come from core.employee_snapshot_baseline
-- as runs of consecutive snapshots; live snapshots are runs of one. A loaded file dated on or before
-- the last sealed snapshot (core.hris_sealed_through) arrived after its period was sealed and is not used.
with sealed_files as (
    select file_date
    from core.hris_sealed_file
    where feed = 'employees'
),

seal as (
    select sealed_through_date
    from core.hris_sealed_through
    where feed = 'employees'
),

loaded_files as (
    select distinct on (manifest.file_date)
        manifest.sha256,
        manifest.file_date,
        knowledge.known_at,
        manifest.date_pattern,
        manifest.date_groups
    from audit.file_manifest as manifest
    inner join core.hris_file_knowledge as knowledge
        on manifest.file_name = knowledge.file_name and manifest.sha256 = knowledge.sha256
    where
        manifest.feed = 'employees'
        and manifest.file_date > coalesce((select seal.sealed_through_date from seal), '-infinity')
        and case
            when %(known_by)s::timestamptz is null then manifest.status = 'loaded'
            else knowledge.known_at <= %(known_by)s::timestamptz
        end
    order by manifest.file_date asc, knowledge.known_at desc
),

snapshot_sequence as (
    select
        snapshot_dates.file_date as snapshot_date,
        row_number() over (order by snapshot_dates.file_date) as snapshot_ordinal
    from (
        select sealed_files.file_date from sealed_files
        union all
        select loaded_files.file_date from loaded_files
    ) as snapshot_dates
),

date_texts as (
    select distinct
        loaded_files.date_pattern,
        loaded_files.date_groups,
        raw_dates.raw_value
    from raw.hris_employee_snapshot as snapshot_row
    inner join loaded_files on snapshot_row.source_sha256 = loaded_files.sha256
    cross join
        lateral (
            values (snapshot_row.hire_date), (snapshot_row.termination_date)
        ) as raw_dates (raw_value)
    where raw_dates.raw_value is not null
),

-- One lookup object per date format, parsed once per distinct text: a snapshot row finds its dates by
-- key, whatever join order the planner picks. Joined as rows, the parsed texts were rescanned once per
-- snapshot row whenever the planner guessed loaded_files small (on the demo's data ten times slower).
-- Materialized (built once; inlined, the planner may aggregate again per file or per row), and joined
-- only to rows already materialized, so no join can copy a lookup once per file or drag it through the
-- later joins (where every row would carry it and spill).
date_lookups as materialized (
    select
        date_pattern,
        date_groups,
        jsonb_object_agg(
            raw_value,
            core.parse_date_text(raw_value, date_pattern, date_groups[1], date_groups[2], date_groups[3])
        ) as parsed_by_text
    from date_texts
    group by date_pattern, date_groups
),

job_level_texts as (
    select snapshot_row.job_level as raw_value
    from raw.hris_employee_snapshot as snapshot_row
    inner join loaded_files on snapshot_row.source_sha256 = loaded_files.sha256
    union
    select baseline.job_level_raw from core.employee_snapshot_baseline as baseline
),

-- Vendor job levels (L3, IC4, Senior, 3, ...) through hris.job_level_mapping, once per distinct text;
-- the gate let no file through with a level the mapping gave no ordinal. Sealed levels are mapped
-- again too, so a rebuild after the purge still equals one before it.
job_levels as (
    select
        job_level_texts.raw_value,
        mapped.ordinal,
        mapped.label
    from job_level_texts
    cross join lateral core.map_job_level(job_level_texts.raw_value, %(job_level_mapping)s::jsonb) as mapped
    where job_level_texts.raw_value is not null
),

-- Each used snapshot row with its texts parsed, dates aside (their file's date format kept).
parsed_snapshot_rows as materialized (
    select
        snapshot_row.employee_id,
        snapshot_row.snapshot_date,
        loaded_files.known_at,
        snapshot_row.first_name,
        snapshot_row.last_name,
        snapshot_row.termination_reason,
        snapshot_row.employment_status,
        snapshot_row.job_role,
        snapshot_row.job_level as job_level_raw,
        snapshot_row.department,
        snapshot_row.location,
        snapshot_row.currency,
        snapshot_row.source_sha256,
        snapshot_row.hire_date as hire_date_text,
        snapshot_row.termination_date as termination_date_text,
        loaded_files.date_pattern,
        loaded_files.date_groups,
        nullif(btrim(snapshot_row.sso_guid), '') as sso_guid,
        nullif(btrim(snapshot_row.work_email), '') as work_email,
        nullif(btrim(snapshot_row.termination_type), '') as termination_type,
        %(termination_mapping)s::jsonb
        ->> lower(btrim(snapshot_row.termination_type)) as termination_category,
        nullif(btrim(snapshot_row.manager_id), '') as manager_id,
        core.parse_numeric_text(snapshot_row.base_salary) as base_salary,
        core.parse_numeric_text(snapshot_row.fte) as fte,
        core.parse_integer_text(snapshot_row.performance_rating) as performance_rating,
        nullif(btrim(snapshot_row.lms_user_id), '') as lms_user_id
    from raw.hris_employee_snapshot as snapshot_row
    inner join loaded_files on snapshot_row.source_sha256 = loaded_files.sha256
    where %(employee_ids)s::text[] is null or snapshot_row.employee_id = any(%(employee_ids)s::text[])
),

dated_snapshot_rows as materialized (
    select
        parsed.*,
        (date_lookups.parsed_by_text ->> parsed.hire_date_text)::date as hire_date,
        (date_lookups.parsed_by_text ->> parsed.termination_date_text)::date as termination_date
    from parsed_snapshot_rows as parsed
    left join date_lookups
        on
            parsed.date_pattern = date_lookups.date_pattern
            and parsed.date_groups = date_lookups.date_groups
),

live_rows as (
    select
        parsed.employee_id,
        parsed.snapshot_date,
        snapshot_sequence.snapshot_ordinal as first_ordinal,
        snapshot_sequence.snapshot_ordinal as last_ordinal,
        parsed.known_at,
        parsed.source_sha256,
        parsed.sso_guid,
        parsed.work_email,
        parsed.first_name,
        parsed.last_name,
        parsed.hire_date,
        parsed.termination_date,
        parsed.termination_type,
        parsed.termination_category,
        parsed.termination_reason,
        parsed.employment_status,
        parsed.job_role,
        job_levels.ordinal as job_level,
        parsed.job_level_raw,
        job_levels.label as job_level_label,
        parsed.department,
        parsed.location,
        parsed.manager_id,
        parsed.base_salary,
        parsed.currency,
        parsed.fte,
        parsed.performance_rating,
        parsed.lms_user_id
    from dated_snapshot_rows as parsed
    inner join snapshot_sequence on parsed.snapshot_date = snapshot_sequence.snapshot_date
    left join job_levels on parsed.job_level_raw = job_levels.raw_value
),

baseline_rows as (
    select
        baseline.employee_id,
        baseline.first_snapshot_date as snapshot_date,
        first_snapshot.snapshot_ordinal as first_ordinal,
        last_snapshot.snapshot_ordinal as last_ordinal,
        baseline.known_at,
        baseline.source_sha256,
        baseline.sso_guid,
        baseline.work_email,
        baseline.first_name,
        baseline.last_name,
        baseline.hire_date,
        baseline.termination_date,
        baseline.termination_type,
        %(termination_mapping)s::jsonb ->> lower(baseline.termination_type) as termination_category,
        baseline.termination_reason,
        baseline.employment_status,
        baseline.job_role,
        baseline_level.ordinal as job_level,
        baseline.job_level_raw,
        baseline_level.label as job_level_label,
        baseline.department,
        baseline.location,
        baseline.manager_id,
        baseline.base_salary,
        baseline.currency,
        baseline.fte,
        baseline.performance_rating,
        baseline.lms_user_id
    from core.employee_snapshot_baseline as baseline
    inner join snapshot_sequence as first_snapshot on baseline.first_snapshot_date = first_snapshot.snapshot_date
    inner join snapshot_sequence as last_snapshot on baseline.last_snapshot_date = last_snapshot.snapshot_date
    left join job_levels as baseline_level on baseline.job_level_raw = baseline_level.raw_value
    where %(employee_ids)s::text[] is null or baseline.employee_id = any(%(employee_ids)s::text[])
),

snapshot_rows as (
    select * from baseline_rows
    union all
    select * from live_rows
),

fingerprinted as (
    select
        *,
        md5(
            row(
                sso_guid, work_email, first_name, last_name, hire_date, termination_date,
                termination_type, termination_reason, employment_status, job_role, job_level, job_level_raw,
                department, location, manager_id, base_salary, currency, fte, performance_rating, lms_user_id
            )::text
        ) as attribute_hash
    from snapshot_rows
),

compared as (
    select
        *,
        lag(attribute_hash) over by_employee as previous_hash,
        lag(last_ordinal) over by_employee as previous_last_ordinal
    from fingerprinted
    window by_employee as (partition by employee_id order by first_ordinal)
),

islands as (
    select
        *,
        sum(
            case
                when previous_hash is distinct from attribute_hash then 1
                when previous_last_ordinal <> first_ordinal - 1 then 1
                else 0
            end
        ) over (partition by employee_id order by first_ordinal) as island
    from compared
),

interval_rows as (
    select
        *,
        row_number() over (
            partition by employee_id, island order by first_ordinal
        ) as position_in_interval,
        max(last_ordinal) over (partition by employee_id, island) as interval_last_ordinal
    from islands
),

intervals as (
    select
        *,
        lead(first_ordinal) over (
            partition by employee_id order by first_ordinal
        ) as next_interval_first_ordinal
    from interval_rows
    where position_in_interval = 1
),

final as (
    select
        intervals.employee_id,
        intervals.snapshot_date as valid_from,
        next_snapshot.snapshot_date as valid_to,
        intervals.known_at,
        intervals.source_sha256,
        intervals.sso_guid,
        intervals.work_email,
        intervals.first_name,
        intervals.last_name,
        intervals.hire_date,
        intervals.termination_date,
        intervals.termination_type,
        intervals.termination_category,
        intervals.termination_reason,
        intervals.employment_status,
        intervals.job_role,
        intervals.job_level,
        intervals.job_level_raw,
        intervals.job_level_label,
        intervals.department,
        intervals.location,
        intervals.manager_id,
        intervals.base_salary,
        intervals.currency,
        intervals.fte,
        intervals.performance_rating,
        intervals.lms_user_id,
        next_snapshot.snapshot_date is null as is_current,
        case
            when next_snapshot.snapshot_date is null then null
            when intervals.next_interval_first_ordinal = intervals.interval_last_ordinal + 1 then 'attribute_change'
            else 'absent_from_snapshot'
        end as closed_by
    from intervals
    left join snapshot_sequence as next_snapshot
        on intervals.interval_last_ordinal + 1 = next_snapshot.snapshot_ordinal
)

select * from final
