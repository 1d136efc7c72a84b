-- one row per distinct xAPI actor identifier in learning activity, parsed for matching
-- The table only ever grows: the caller inserts with "on conflict do nothing", so only identifiers
-- not yet known are added; %(loaded_after)s limits the scan to activity loaded since the last run
-- (null = all activity). Load time, not stored time: a statement the LRS exposes late, or one a
-- lowered watermark re-reads, arrives with a stored time older than activity already seen.
with activity as (
    select distinct
        learner_identifier,
        learner_identifier_type
    from core.lms_activity
    where %(loaded_after)s::timestamptz is null or loaded_at > %(loaded_after)s::timestamptz
),

final as (
    select
        activity.learner_identifier,
        activity.learner_identifier_type,
        case
            when activity.learner_identifier_type = 'account'
                then substr(activity.learner_identifier, strpos(activity.learner_identifier, '|') + 1)
        end as account_name,
        case
            when activity.learner_identifier_type = 'mbox'
                then core.normalize_work_email(
                    substr(activity.learner_identifier, 6),
                    %(corporate_domains)s::text[], %(domain_aliases)s::jsonb, %(strip_plus_aliases)s::boolean
                )
        end as email_normalized,
        case
            when activity.learner_identifier_type = 'mbox_sha1sum' then substr(activity.learner_identifier, 14)
        end as mbox_sha1sum
    from activity
)

select * from final
