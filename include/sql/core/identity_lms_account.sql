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

normalized as (
    select
        lms_user_id,
        last_modified_at,
        nullif(lower(btrim(external_id)), '') as external_id_normalized,
        core.normalize_work_email(
            coalesce(work_email, primary_email),
            %(corporate_domains)s::text[], %(domain_aliases)s::jsonb, %(strip_plus_aliases)s::boolean
        ) as email_normalized,
        core.normalize_work_email(
            primary_email, %(corporate_domains)s::text[], %(domain_aliases)s::jsonb, %(strip_plus_aliases)s::boolean
        ) as primary_email_normalized,
        coalesce(is_active, false) as is_active,
        coalesce(created_at, last_modified_at) as created_at
    from current_version
),

final as (
    select
        lms_user_id,
        external_id_normalized,
        email_normalized,
        is_active,
        created_at,
        last_modified_at,
        nullif(primary_email_normalized, email_normalized) as primary_email_normalized,
        coalesce(split_part(email_normalized, '@', 2) = any(%(corporate_domains)s::text[]), false)
            as is_corporate_email
    from normalized
)

select * from final
