-- one row per HRIS file loaded (and possibly superseded since): when what it says became known
-- A file dated F is known at the end of F (UTC) + %(delivery_lag)s, however late it reached this
-- warehouse: a first install that loads years of files at once knows each date when production would
-- have. A correction (a later delivery for a date that already had a loaded file, which it superseded)
-- is known from its delivery: its modification time on the SFTP server, else when it was received, and
-- never before its date's end + the lag. The file it superseded stays what was known until then.
with hris_files as (
    select
        file_name,
        sha256,
        feed,
        file_date,
        status,
        coalesce(remote_mtime, received_at) as delivered_at
    from audit.file_manifest
    where status in ('loaded', 'superseded')
),

corrections as (
    select distinct superseded_by_sha256 as sha256
    from audit.file_manifest
    where status = 'superseded' and superseded_by_sha256 is not null
),

final as (
    select
        hris_files.file_name,
        hris_files.sha256,
        hris_files.feed,
        hris_files.file_date,
        hris_files.status,
        corrections.sha256 is not null as is_correction,
        case
            when corrections.sha256 is not null
                then greatest(
                    hris_files.delivered_at,
                    (hris_files.file_date + 1)::timestamp at time zone 'UTC' + %(delivery_lag)s::interval
                )
            else (hris_files.file_date + 1)::timestamp at time zone 'UTC' + %(delivery_lag)s::interval
        end as known_at
    from hris_files
    left join corrections on hris_files.sha256 = corrections.sha256
)

select * from final
