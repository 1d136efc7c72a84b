-- one row per LMS user: the directory's current version with its identifiers normalized
-- Scoped by %(lms_user_ids)s (null = every user).
with current_version as (
    select
        lms_user_id,
        external_id,
        work_email,
        primary_email,
        is_active,
        created_at,
        last_modified_at
    from raw.lms_user
    where
        valid_to is null
        and (%(lms_user_ids)s::text[] is null or lms_user_id = any(%(lms_user_ids)s::text[]))
),

version_identifiers as (
    select
        current_version.lms_user_id,
        version_row.last_modified_at,
        version_row.created_at,
        (
            current_version.external_id is not distinct from version_row.external_id
            and current_version.work_email is not distinct from version_row.work_email
            and current_version.primary_email is not distinct from version_row.primary_email
        ) as has_current_identifiers
    from current_version
    inner join raw.lms_user as version_row on current_version.lms_user_id = version_row.lms_user_id
),

first_versions as (
    select
        lms_user_id,
        min(last_modified_at) as first_seen_at,
        min(last_modified_at) filter (where has_current_identifiers) as identifiers_first_seen_at,
        min(created_at) as created_at
    from version_identifiers
    group by lms_user_id
),

identifiers_first_known as (
    -- when the identifiers the account has now (external id, addresses) became known: the directory's
    -- lastModified of the first version showing them, when an earlier version without them was seen; when
    -- no other version was ever seen (a first install sees only the current state), the account's
    -- meta.created, since nothing says the identifiers came later
    select
        lms_user_id,
        case
            when identifiers_first_seen_at = first_seen_at then coalesce(created_at, first_seen_at)
            else identifiers_first_seen_at
        end as identifiers_known_at
    from first_versions
),

normalized as (
    select
        current_version.lms_user_id,
        current_version.last_modified_at,
        identifiers_first_known.identifiers_known_at,
        nullif(lower(btrim(current_version.external_id)), '') as external_id_normalized,
        core.normalize_work_email(
            coalesce(current_version.work_email, current_version.primary_email),
            %(corporate_domains)s::text[], %(domain_aliases)s::jsonb, %(strip_plus_aliases)s::boolean
        ) as email_normalized,
        core.normalize_work_email(
            current_version.primary_email,
            %(corporate_domains)s::text[], %(domain_aliases)s::jsonb, %(strip_plus_aliases)s::boolean
        ) as primary_email_normalized,
        coalesce(current_version.is_active, false) as is_active,
        coalesce(current_version.created_at, current_version.last_modified_at) as created_at
    from current_version
    inner join identifiers_first_known on current_version.lms_user_id = identifiers_first_known.lms_user_id
),

final as (
    select
        lms_user_id,
        external_id_normalized,
        email_normalized,
        is_active,
        created_at,
        last_modified_at,
        identifiers_known_at,
        nullif(primary_email_normalized, email_normalized) as primary_email_normalized,
        coalesce(split_part(email_normalized, '@', 2) = any(%(corporate_domains)s::text[]), false)
            as is_corporate_email
    from normalized
)

select * from final
