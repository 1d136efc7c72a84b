-- one row per SCIM user of a pull that is a new version of that user in raw.lms_user, with its time
-- Bound by the loader to the name scim_pull_users (the pull's users as received: the columns of
-- raw.lms_user that the directory gives, last_modified_at null where it gives no meta.lastModified).
-- A user with meta.lastModified is versioned by it (raw.lms_user keeps the first copy of each). A user
-- without it is versioned by content: a new version only when the resource, without meta, differs from
-- the user's latest version, timed when that content was first seen (%(first_seen_at)s, the pull's
-- start; meta.created for a user's first version), and never at or before the latest version.
with pull_users as (
    select
        lms_user_id,
        last_modified_at,
        user_name,
        external_id,
        work_email,
        primary_email,
        emails,
        is_active,
        created_at,
        resource
    from scim_pull_users
),

latest_versions as (
    select distinct on (lms_user_id)
        lms_user_id,
        last_modified_at,
        resource
    from raw.lms_user
    where lms_user_id in (select pull_users.lms_user_id from pull_users)
    order by lms_user_id asc, last_modified_at desc
),

compared as (
    select
        pull_users.*,
        latest_versions.last_modified_at as latest_version_at,
        latest_versions.lms_user_id is null as is_first_version,
        coalesce(latest_versions.resource - 'meta' <> pull_users.resource - 'meta', true) as is_changed
    from pull_users
    left join latest_versions on pull_users.lms_user_id = latest_versions.lms_user_id
),

final as (
    select
        lms_user_id,
        user_name,
        external_id,
        work_email,
        primary_email,
        emails,
        is_active,
        created_at,
        resource,
        case
            when last_modified_at is not null then last_modified_at
            when is_first_version then coalesce(created_at, %(first_seen_at)s::timestamptz)
            else greatest(%(first_seen_at)s::timestamptz, latest_version_at + interval '1 microsecond')
        end as last_modified_at
    from compared
    where last_modified_at is not null or is_changed
)

select * from final
